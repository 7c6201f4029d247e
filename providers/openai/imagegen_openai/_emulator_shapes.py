"""What the OpenAI emulator says and checks: the error envelope, request parsing (JSON and
multipart as real clients send it) and the per-model validations of spec sections 3-5.

Error bodies are the recorded ones where a recording or a quoted real body exists
(``invalid_api_key``, ``unknown_parameter``, ``unsupported_file_mimetype``, ``invalid_value``
with ``param: "url"``, ``invalid_image_file``, ``moderation_blocked``, ``insufficient_quota``,
``rate_limit_exceeded``); the rest (an invalid size or quality, a mask of the wrong size,
``input_fidelity`` on a model without it, a missing model) are **emulator inventions** in the
same envelope, since no source shows the real body (spec section 14).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

from starlette.responses import JSONResponse, Response

from imagegen import ModelSpec

from ._catalog import FIXED_BY_RATIO, family, free_size_problem, parse_wh

__all__ = ["Form", "Reject", "Upload", "check_params", "openai_error", "parse_multipart", "scripted_error", "sniff"]

#: Top-level parameters each endpoint knows; anything else is ``unknown_parameter``.
GENERATION_PARAMS = frozenset({"model", "prompt", "n", "quality", "response_format", "output_format",
                               "output_compression", "background", "moderation", "size", "style", "stream",
                               "partial_images", "user", "complexity"})
EDIT_PARAMS = frozenset({"model", "prompt", "n", "quality", "response_format", "output_format", "output_compression",
                         "background", "size", "stream", "partial_images", "user", "input_fidelity", "image",
                         "mask", "images", "moderation"})
MARKER = re.compile(r"\[\[([A-Z_]+)(?::([a-z_]+))?(?::(\d+(?:\.\d+)?))?\]\]")


class Reject(Exception):
    """Raised by a check to answer with ``response`` at once."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def openai_error(status: int, message: str, *, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None, **more: Any) -> JSONResponse:
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code, **more}
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def bad(message: str, *, param: str | None, code: str | None = "invalid_value") -> Reject:
    return Reject(openai_error(400, message, param=param, code=code))


@dataclass
class Upload:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)


def parse_multipart(body: bytes, content_type: str) -> Form:
    """``multipart/form-data`` with the standard library: repeated ``image[]`` parts, ``image[N]``,
    empty part ``Content-Type:`` (Ruby) and unquoted disposition parameters (.NET) all read."""
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise bad("Could not parse multipart form", param=None, code=None)
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            form.files.append(Upload(name, filename, str(part.get("content-type") or "").strip(), data))
        else:
            form.fields[name] = data.decode("utf-8", errors="replace")
    return form


def sniff(data: bytes) -> tuple[str, int, int, bool] | None:
    """(MIME type, width, height, has alpha) of image bytes, or None when they are no image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            return f"image/{(img.format or '').lower()}", img.width, img.height, alpha
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _number(params: dict[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"Invalid type for '{key}': expected an integer, but got a {type(value).__name__} instead.",
                  param=key, code="invalid_type")
    return value


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def check_params(params: dict[str, Any], spec: ModelSpec, *, edit: bool) -> dict[str, Any]:
    """Validate as the API does (spec 3-5); return the effective settings (size, quality, ...)."""
    known = EDIT_PARAMS if edit else GENERATION_PARAMS
    kind = family(spec)
    for key in params:
        if key not in known or (key == "response_format" and kind.startswith("gpt")) or \
                (key == "style" and kind != "dalle3") or (key == "complexity" and "complexities" not in spec.extra):
            raise bad(f"Unknown parameter: '{key}'.", param=key, code="unknown_parameter")
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    if spec.max_prompt_chars and len(prompt) > spec.max_prompt_chars:
        raise bad(f"Invalid 'prompt': string too long. Expected a string with maximum length "
                  f"{spec.max_prompt_chars}, but got a string with length {len(prompt)} instead.",
                  param="prompt", code="string_above_max_length")
    n = _number(params, "n", 1)
    if not 1 <= n <= spec.max_images_per_call:
        raise bad(f"Invalid 'n': {n}. {spec.id} supports n from 1 to {spec.max_images_per_call}.", param="n")
    size = _check_size(params.get("size"), spec)
    qualities = spec.extra.get("qualities", [])
    quality = params.get("quality", "auto" if kind.startswith("gpt") else qualities[0])
    if quality not in qualities:
        raise bad(f"Invalid value: '{quality}'. Supported values are: {', '.join(map(repr, qualities))}.",
                  param="quality")
    settings = {"n": n, "size": size, "quality": quality, "prompt": prompt, **_check_gpt_options(params, spec, edit)}
    partials = _number(params, "partial_images", 0) if "partial_images" in params else 0
    stream = _flag(params.get("stream"))
    if stream and (not kind.startswith("gpt") or not spec.extra.get("streaming")):
        raise bad(f"Streaming is not supported for {spec.id}.", param="stream")
    if not 0 <= partials <= 3:
        raise bad(f"Invalid 'partial_images': {partials}. Expected a value between 0 and 3.", param="partial_images")
    settings.update(stream=stream, partials=partials if stream else 0)
    return settings


def _check_size(size: Any, spec: ModelSpec) -> str:
    kind = family(spec)
    if size is None:
        return "auto" if kind.startswith("gpt") else spec.sizes[0]
    if not isinstance(size, str):
        raise bad("Invalid type for 'size': expected a string.", param="size", code="invalid_type")
    if kind == "gpt2":
        parsed = parse_wh(size)
        problem = "not of the form WIDTHxHEIGHT" if parsed is None and size != "auto" else (
            free_size_problem(*parsed) if parsed else None)
        if problem:
            raise bad(f"Invalid size '{size}': {problem}.", param="size")
        return size
    allowed = ["auto", *FIXED_BY_RATIO.values()] if kind == "gpt1" else list(spec.sizes)
    if size not in allowed:
        raise bad(f"Invalid value: '{size}'. Supported values are: {', '.join(map(repr, allowed))}.", param="size")
    return size


def _check_gpt_options(params: dict[str, Any], spec: ModelSpec, edit: bool) -> dict[str, Any]:
    fmt = str(params.get("output_format", "png"))
    formats = [f for f in spec.output_formats if f != "jpg"]
    if fmt not in formats or (edit and fmt in spec.extra.get("generate_only_formats", [])):
        raise bad(f"Invalid value: '{fmt}'. Supported values are: {', '.join(map(repr, formats))}.",
                  param="output_format")
    background = params.get("background", "auto")
    if background not in spec.extra.get("backgrounds", ["auto"]):
        raise bad(f"Invalid value: '{background}'.", param="background")
    if background == "transparent" and fmt not in ("png", "webp"):
        raise bad("Transparent background requires output_format png or webp.", param="background")
    if "output_compression" in params:
        compression = _number(params, "output_compression", 100)
        if not 0 <= compression <= 100:
            raise bad(f"Invalid 'output_compression': {compression}. Expected 0 to 100.", param="output_compression")
    if params.get("moderation", "auto") not in ("low", "auto"):
        raise bad(f"Invalid value: '{params['moderation']}'. Supported values are: 'low' and 'auto'.",
                  param="moderation")
    if "input_fidelity" in params:
        if not spec.extra.get("input_fidelity"):
            raise bad(f"input_fidelity is not supported for {spec.id}.", param="input_fidelity",
                      code="unsupported_parameter")
        if params["input_fidelity"] not in ("low", "high"):
            raise bad(f"Invalid value: '{params['input_fidelity']}'.", param="input_fidelity")
    if "complexity" in params and params["complexity"] not in spec.extra.get("complexities", []):
        raise bad(f"Invalid value: '{params['complexity']}'.", param="complexity")
    return {"output_format": fmt, "background": background}


def json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad("We could not parse the JSON body of your request.", param=None, code=None) from None
    if not isinstance(body, dict):
        raise bad("The JSON body of your request must be an object.", param=None, code=None)
    return body


def markers(prompt: str) -> list[tuple[str, str, str]]:
    return MARKER.findall(prompt)


_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    "quota": (429, "insufficient_quota", "insufficient_quota",
              "You exceeded your current quota, please check your plan and billing details."),
    "credits": (429, "insufficient_quota", "credit_balance_exhausted",
                "Your credit balance is exhausted. Add credits to continue."),
    "billing": (400, "invalid_request_error", "billing_hard_limit_reached", "Billing hard limit has been reached"),
    "server": (500, "server_error", None, "The server had an error while processing your request. Sorry about that!"),
    "overloaded": (503, "service_unavailable_error", "server_is_overloaded",
                   "The engine is currently overloaded, please try again later"),
    "verify": (403, "invalid_request_error", None,
               "Your organization must be verified to use the model `{model}`. Please go to: "
               "https://platform.openai.com/settings/organization/general and click on Verify Organization."),
    "conflict": (409, "invalid_request_error", None, "The request conflicted with another request. Retry it."),
}


def scripted_error(prompt: str, spec: ModelSpec) -> None:
    """Raise the answer a prompt marker asks for (see the emulator's docstring), if any."""
    for name, kind, number in markers(prompt):
        if name == "MODERATION_BLOCKED":
            stage = kind or "input"
            raise Reject(openai_error(
                400, "Your request was rejected by the safety system. If you believe this is an error, contact "
                     "us at help.openai.com and include the request ID req_emulated. safety_violations=[other].",
                type_="image_generation_user_error", code="moderation_blocked",
                moderation_details={"moderation_stage": stage, "categories": ["other"]}))
        if name == "CONTENT_POLICY":
            raise bad("Your request was rejected as a result of our safety system. Your prompt may contain text "
                      "that is not allowed by our safety system.", param=None, code="content_policy_violation")
        if name != "ERROR":
            continue
        if kind.startswith("rate_limit"):
            seconds = float(number) if number else 1.0
            headers = {} if kind == "rate_limit_bare" else (
                {"retry-after-ms": str(round(seconds))} if kind == "rate_limit_ms" else
                {"retry-after": f"{seconds:g}"})
            raise Reject(openai_error(429, "Rate limit reached for images per minute. Please try again later.",
                                      type_="requests", code="rate_limit_exceeded", headers=headers))
        if kind not in _ERRORS:
            raise ValueError(f"unknown [[ERROR:...]] marker {kind!r}; use rate_limit or one of "
                             f"{', '.join(_ERRORS)}")
        status, type_, code, message = _ERRORS[kind]
        raise Reject(openai_error(status, message.format(model=spec.id), type_=type_, code=code))
