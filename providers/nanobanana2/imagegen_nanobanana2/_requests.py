"""Checking an ``ImageRequest`` against nano-banana2.com and building what is sent.

Everything here runs before any network call. The rules are strict because the API is
known from one guide only: a field the guide does not show is never sent, and a setting
that would have to be dropped is an error naming what is accepted instead.

Which endpoint serves a request:

- ``generate`` -> ``POST /generate`` (JSON). Reference images go in ``reference_images``,
  which takes **URLs only**; image bytes are refused with an error pointing at ``edit()``
  (the API has no upload field on /generate, and silently switching to /edit would
  change what the caller asked for).
- ``edit`` with one image -> ``POST /edit`` (multipart ``image``).
- ``edit`` with ``options={"blend": True}`` -> ``POST /blend`` (multipart ``image1``,
  ``image2``); exactly two images (``extra.blend_images`` in models.toml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from imagegen import ImageRequest, InvalidRequestError, ModelSpec, UnsupportedFeatureError

__all__ = ["Call", "build_call", "check_options", "wants_credit_check"]

#: Options only an edit (``/edit`` or ``/blend``) understands.
_EDIT_OPTIONS = ("blend", "blend_strength")
#: Options only ``/generate`` understands.
_GENERATE_OPTIONS = ("guidance_scale", "style_reference_url", "style_strength")


@dataclass
class Call:
    """One HTTP call to make: method, path and either a JSON body or multipart fields."""

    path: str
    json: dict[str, Any] | None = None
    data: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)


def _where(provider: str, spec: ModelSpec) -> str:
    return f"{provider}/{spec.id}"


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.split("://", 1)[0].lower() in ("http", "https") and "://" in value


def _ranged(name: str, value: Any, spec: ModelSpec, where: str) -> float:
    low, high = spec.extra.get("option_ranges", {}).get(name, (-math.inf, math.inf))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRequestError(f"option {name} must be a number between {low} and {high}, not {value!r}")
    if not low <= value <= high:
        raise InvalidRequestError(f"option {name}={value} is out of range for {where}; use {low} to {high}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequestError(f"option {name} must be true or false, not {value!r}")
    return value


def check_options(request: ImageRequest, spec: ModelSpec, *, provider: str) -> None:
    """Raise if the request's options, images or settings cannot be sent as asked."""
    where = _where(provider, spec)
    opts = request.options
    for name in ("blend", "check_credits"):
        if name in opts:
            _flag(name, opts[name])
    for name in ("guidance_scale", "style_strength", "blend_strength"):
        if name in opts:
            _ranged(name, opts[name], spec, where)
    if "style_reference_url" in opts and not _is_url(opts["style_reference_url"]):
        raise InvalidRequestError(
            f"option style_reference_url must be an http(s) URL, not {opts['style_reference_url']!r}")
    if "style_strength" in opts and "style_reference_url" not in opts:
        raise InvalidRequestError("option style_strength needs style_reference_url; set both or neither")
    if request.webhook_url is not None and not _is_url(request.webhook_url):
        raise InvalidRequestError(f"webhook_url must be an http(s) URL, not {request.webhook_url!r}")
    if request.seed is not None:
        low, high = spec.extra.get("seed_range", (0, 2**31 - 1))
        if not low <= request.seed <= high:
            raise InvalidRequestError(f"seed {request.seed} is out of range for {where}; use {low} to {high}")
    if request.operation == "edit":
        _check_edit(request, spec, where)
    else:
        _check_generate(request, spec, where)


def _check_generate(request: ImageRequest, spec: ModelSpec, where: str) -> None:
    misplaced = [name for name in _EDIT_OPTIONS if name in request.options]
    if misplaced:
        raise UnsupportedFeatureError(
            f"option(s) {', '.join(misplaced)} apply to edit() only on {where}; "
            "call edit(prompt, images=[a, b], options={'blend': True})")
    if request.aspect_ratio in spec.extra.get("edit_only_aspect_ratios", ()):
        raise UnsupportedFeatureError(
            f"aspect ratio {request.aspect_ratio!r} is accepted by edit() only on {where}; "
            "pick an explicit ratio for generate()")
    for number, image in enumerate(request.images, 1):
        if image.url is None or image.data is not None:
            raise UnsupportedFeatureError(
                f"image {number}: {where} /generate takes reference images as http(s) URLs only; "
                "pass URLs, or use edit() to upload image files (options={'blend': True} combines two)")


def _check_edit(request: ImageRequest, spec: ModelSpec, where: str) -> None:
    generate_only = [name for name in _GENERATE_OPTIONS if name in request.options]
    if request.seed is not None:
        generate_only.append("seed")
    if generate_only:
        raise UnsupportedFeatureError(
            f"{', '.join(generate_only)} can only be sent to /generate on {where}; "
            "/edit and /blend do not take them: leave them unset for edit()")
    if request.n != 1:
        raise UnsupportedFeatureError(f"an edit on {where} returns one image per call; use n=1 (and call again)")
    for number, image in enumerate(request.images, 1):
        if image.data is None:
            raise UnsupportedFeatureError(
                f"image {number}: {where} edits upload image files; pass bytes or a file path, not a URL")
    blend = request.options.get("blend", False)
    if "blend_strength" in request.options and not blend:
        raise InvalidRequestError("option blend_strength needs blend: set options={'blend': True, ...}")
    if blend:
        wanted = int(spec.extra.get("blend_images", 2))
        if len(request.images) != wanted:
            raise InvalidRequestError(
                f"a blend on {where} takes exactly {wanted} images, got {len(request.images)}")
        extra = [name for name in ("aspect_ratio", "output_format") if getattr(request, name) is not None]
        if extra:
            raise UnsupportedFeatureError(
                f"/blend on {where} does not take {' or '.join(extra)}; leave it unset for a blend")
    elif len(request.images) > 1:
        raise InvalidRequestError(
            f"an edit on {where} takes one image, got {len(request.images)}; "
            "to combine two images set options={'blend': True}")


def wants_credit_check(request: ImageRequest, default: bool) -> bool:
    return bool(request.options.get("check_credits", default))


def _format(request: ImageRequest) -> str | None:
    fmt = request.output_format.lower() if request.output_format else None
    return "jpeg" if fmt == "jpg" else fmt


def _file(image: Any, stem: str) -> tuple[str, bytes, str]:
    mime = image.mime_type or "application/octet-stream"
    ext = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}.get(mime, "bin")
    return (image.name or f"{stem}.{ext}", image.data, mime)


def build_call(request: ImageRequest, spec: ModelSpec) -> Call:
    """The call for an already-checked request. Only fields set by the caller are sent."""
    webhook_field = spec.extra.get("webhook_field", "webhookUrl")
    opts = request.options
    if request.operation == "generate":
        body: dict[str, Any] = {"prompt": request.prompt, "num_outputs": request.n}
        optional = {
            "aspect_ratio": request.aspect_ratio,
            "output_format": _format(request),
            "guidance_scale": opts.get("guidance_scale"),
            "seed": request.seed,
            "reference_images": [image.url for image in request.images] or None,
            "style_reference_url": opts.get("style_reference_url"),
            "style_strength": opts.get("style_strength"),
            webhook_field: request.webhook_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return Call(path="/generate", json=body)
    data = {"prompt": request.prompt}
    if request.webhook_url is not None:
        data[webhook_field] = request.webhook_url
    if opts.get("blend"):
        if "blend_strength" in opts:
            data["blend_strength"] = repr(float(opts["blend_strength"]))
        files = {f"image{i}": _file(image, f"image{i}") for i, image in enumerate(request.images, 1)}
        return Call(path="/blend", data=data, files=files)
    if request.aspect_ratio is not None:
        data["aspect_ratio"] = request.aspect_ratio
    if _format(request) is not None:
        data["output_format"] = _format(request)  # type: ignore[assignment]
    return Call(path="/edit", data=data, files={"image": _file(request.images[0], "image")})
