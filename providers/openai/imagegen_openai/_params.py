"""Building the wire request from an ``ImageRequest``: pure, no I/O.

``check(request, spec)`` validates every OpenAI option against the model (section 3-5 of the
spec) before anything is sent; ``generation_body`` and ``edit_call`` then build exactly what goes
on the wire. Edits come in the two forms the API takes: multipart (files as ``image`` /
``image[]`` and ``mask``; the form the official SDK sends) and, since 2026-02-09, JSON
(``images: [{image_url}]``, ``mask: {image_url}``). Multipart is the default: it carries the
bytes as they are, where JSON inflates them by a third as base64. JSON is used when an input is
a URL (OpenAI fetches it; nothing is downloaded here), when ``moderation`` is set (the
multipart schema has no such field), or when ``edit_encoding = "json"`` asks for it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

from imagegen import (
    ImageRequest,
    InputImage,
    InvalidImageError,
    InvalidRequestError,
    ModelSpec,
    UnsupportedFeatureError,
)

from ._catalog import family, wire_size

__all__ = ["EditCall", "check", "edit_call", "generation_body", "wire_format"]

#: GPT models: each input file "png, webp or jpg, < 50 MB"; the mask a PNG < 4 MB (OpenAI's OpenAPI spec).
INPUT_MIME = ("image/png", "image/jpeg", "image/webp")
MAX_INPUT_BYTES = 50 * 1024 * 1024
MAX_MASK_BYTES = 4 * 1024 * 1024
#: ``ImageRefParam.image_url`` is at most this many characters (OpenAI's OpenAPI spec).
MAX_IMAGE_URL_CHARS = 20_971_520
MAX_PARTIAL_IMAGES = 3
_MODERATION = ("low", "auto")
_FIDELITY = ("low", "high")
_ENCODINGS = ("multipart", "json")
_STYLES = ("vivid", "natural")


@dataclass
class EditCall:
    """One ``POST /images/edits``: a JSON body, or multipart ``data`` + ``files``."""

    json: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)


def wire_format(request: ImageRequest) -> str | None:
    fmt = (request.output_format or "").lower() or None
    return "jpeg" if fmt == "jpg" else fmt


def check(request: ImageRequest, spec: ModelSpec, *, provider: str) -> str:
    """Validate the OpenAI-specific parts of ``request``; return the wire size."""
    where = f"{provider}/{spec.id}"
    size = wire_size(request, spec, provider=provider)
    options, extra = request.options, spec.extra
    fmt = wire_format(request) or "png"
    _one_of(options, "quality", extra.get("qualities", []), where)
    _one_of(options, "background", extra.get("backgrounds", []), where)
    _one_of(options, "moderation", _MODERATION, where)
    _one_of(options, "complexity", extra.get("complexities", []), where)
    _one_of(options, "edit_encoding", _ENCODINGS, where)
    _one_of(options, "style", _STYLES, where)
    if "input_fidelity" in options:
        if not extra.get("input_fidelity"):
            raise UnsupportedFeatureError(
                f"option input_fidelity is not accepted by {where} (it always uses its own fidelity); leave it unset")
        _one_of(options, "input_fidelity", _FIDELITY, where)
    if options.get("background") == "transparent" and fmt not in ("png", "webp"):
        raise UnsupportedFeatureError(f"a transparent background needs output_format png or webp, not {fmt!r}")
    if "output_compression" in options:
        value = options["output_compression"]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise InvalidRequestError(f"option output_compression must be an integer 0-100, not {value!r}")
        if fmt not in ("jpeg", "webp"):
            raise UnsupportedFeatureError(f"output_compression applies to jpeg and webp output only, not {fmt!r}")
    if "user" in options and not isinstance(options["user"], str):
        raise InvalidRequestError("option user must be a string (an end-user id for abuse monitoring)")
    if request.operation == "edit" and fmt in extra.get("generate_only_formats", []):
        raise UnsupportedFeatureError(f"output format {fmt} is made by generations only on {where}; edit to png")
    if request.n > 1 and fmt in extra.get("single_image_formats", []):
        raise UnsupportedFeatureError(f"{where} makes one {fmt} per call; ask for n=1")
    if request.operation == "edit":
        _check_inputs(request, where)
    return size


def _one_of(options: dict[str, Any], key: str, allowed: Any, where: str) -> None:
    if key in options and options[key] not in allowed:
        choices = ", ".join(allowed) if allowed else "none (leave it unset)"
        raise UnsupportedFeatureError(f"option {key}={options[key]!r} is not accepted by {where}; use {choices}")


def _check_inputs(request: ImageRequest, where: str) -> None:
    for index, image in enumerate(request.images):
        if image.data is not None and image.mime_type not in INPUT_MIME:
            raise InvalidImageError(
                f"input image {index + 1} is {image.mime_type}; {where} takes PNG, JPEG or WebP inputs")
        if image.data is not None and len(image.data) > MAX_INPUT_BYTES:
            raise InvalidImageError(f"input image {index + 1} is over 50 MB, the most {where} accepts")
    mask = request.mask
    if mask is None:
        return
    if mask.data is None:
        return  # a URL: OpenAI fetches and checks it
    if mask.mime_type != "image/png":
        raise InvalidImageError(f"the mask must be a PNG with an alpha channel, not {mask.mime_type}")
    if len(mask.data) > MAX_MASK_BYTES:
        raise InvalidImageError("the mask must be under 4 MB")
    if not has_alpha(mask.data):
        raise InvalidImageError(
            "the mask PNG has no alpha channel; make the area to edit fully transparent (alpha 0) and save as RGBA")
    first = request.images[0] if request.images else None
    if first is not None and first.width and mask.width and (first.width, first.height) != (mask.width, mask.height):
        raise InvalidImageError(
            f"the mask is {mask.width}x{mask.height} but the first image is {first.width}x{first.height}; "
            "they must be the same size")


def has_alpha(png: bytes) -> bool:
    """Whether a PNG has transparency (an alpha channel or a tRNS chunk)."""
    from PIL import Image  # deferred: Pillow is only needed for masks

    with Image.open(io.BytesIO(png)) as img:
        return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


_PASSED = ("quality", "background", "output_compression", "moderation", "user", "complexity",
           "input_fidelity", "style")


def _common(request: ImageRequest, spec: ModelSpec, size: str, *, stream: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": spec.id, "prompt": request.prompt, "n": request.n, "size": size}
    fmt = wire_format(request)
    if fmt is not None and family(spec).startswith("gpt"):
        body["output_format"] = fmt
    for key in _PASSED:
        if key in request.options:
            body[key] = request.options[key]
    if stream is not None:
        body["stream"] = True
        body["partial_images"] = stream
    return body


def generation_body(request: ImageRequest, spec: ModelSpec, size: str, *, stream: int | None = None) -> dict[str, Any]:
    """The JSON of ``POST /images/generations``. ``stream``: the number of partial images (0-3)."""
    # No response_format, ever: GPT models reject it, and DALL-E's default (a url, valid an hour)
    # is downloaded at once through the shared safe fetch.
    return _common(request, spec, size, stream=stream)


def wants_json(request: ImageRequest) -> bool:
    chosen = request.options.get("edit_encoding")
    if chosen is not None:
        return bool(chosen == "json")
    inputs = [*request.images, *([request.mask] if request.mask is not None else [])]
    return "moderation" in request.options or any(image.data is None for image in inputs)


def edit_call(request: ImageRequest, spec: ModelSpec, size: str, *, stream: int | None = None) -> EditCall:
    """The body of ``POST /images/edits`` in the form ``wants_json`` picks."""
    body = _common(request, spec, size, stream=stream)
    body.pop("edit_encoding", None)
    if wants_json(request):
        if family(spec).startswith("dalle"):
            raise UnsupportedFeatureError(f"{spec.id} edits are multipart only; pass image bytes, not URLs")
        body["images"] = [{"image_url": _image_url(image)} for image in request.images]
        if request.mask is not None:
            body["mask"] = {"image_url": _image_url(request.mask)}
        return EditCall(json=body)
    if any(image.data is None for image in request.images) or (request.mask is not None and request.mask.data is None):
        raise UnsupportedFeatureError("edit_encoding=\"multipart\" needs image bytes; URLs go in the JSON form")
    field_name = "image" if len(request.images) == 1 else "image[]"
    files = [(field_name, (_filename(image, index), image.data or b"", image.mime_type or "image/png"))
             for index, image in enumerate(request.images)]
    if request.mask is not None:
        files.append(("mask", ("mask.png", request.mask.data or b"", "image/png")))
    data = {key: (str(value).lower() if isinstance(value, bool) else str(value)) for key, value in body.items()}
    return EditCall(data=data, files=files)


def _filename(image: InputImage, index: int) -> str:
    ext = (image.mime_type or "image/png").split("/")[-1].replace("jpeg", "jpg")
    return image.name or f"image-{index + 1}.{ext}"


def _image_url(image: InputImage) -> str:
    if image.data is None:
        return image.url or ""
    url = f"data:{image.mime_type or 'image/png'};base64,{base64.b64encode(image.data).decode()}"
    if len(url) > MAX_IMAGE_URL_CHARS:
        raise InvalidImageError("an input image is too large for the JSON edit form (20,971,520 characters); "
                                "use edit_encoding=\"multipart\"")
    return url
