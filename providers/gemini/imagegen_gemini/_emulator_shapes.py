"""Google's shapes for the Gemini emulator: error envelopes, refusal answers and the request
checks the API applies. Pure data and functions; `emulator` serves them."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from starlette.responses import JSONResponse

from imagegen.testing import Fault, Reject

__all__ = ["CONFIG_FIELDS", "ERRORS", "IMAGE_CONFIG_FIELDS", "MARKER", "MODALITIES", "PROTO_RATIOS",
           "SIZE_SPELLINGS", "TOP_FIELDS", "VERTEX_IMAGE_CONFIG_FIELDS", "b64decode", "camelize", "check_fields",
           "check_parts", "google_error", "prompt_of", "quota_error", "quota_reject", "refusal_body",
           "refusal_fault", "refusal_kind", "vertexify"]

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
           501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
#: The proto-level list every model shares; each model then checks its own subset.
PROTO_RATIOS = ("1:1", "1:4", "1:8", "2:3", "3:2", "3:4", "4:1", "4:3", "4:5", "5:4", "8:1", "9:16", "16:9", "21:9")
#: The Modality enum; proto3 JSON parsing matches the names without regard to case, and Google's
#: own image-generation docs write them ``"Text"``, ``"Image"``.
MODALITIES = ("TEXT", "IMAGE", "AUDIO")
SIZE_SPELLINGS = {"1K": "1K", "2K": "2K", "4K": "4K", "512": "512", "512P": "512", "512PX": "512"}
TOP_FIELDS = {"contents", "generationConfig", "tools", "toolConfig", "safetySettings", "systemInstruction",
              "cachedContent", "labels", "model"}
CONFIG_FIELDS = {"responseModalities", "imageConfig", "candidateCount", "seed", "thinkingConfig",
                 "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "responseMimeType",
                 "presencePenalty", "frequencyPenalty", "mediaResolution", "responseLogprobs", "logprobs"}
IMAGE_CONFIG_FIELDS = {"aspectRatio", "imageSize"}
VERTEX_IMAGE_CONFIG_FIELDS = IMAGE_CONFIG_FIELDS | {"personGeneration", "prominentPeople", "imageOutputOptions"}
MARKER = re.compile(r"\[\[([A-Z_]+)(?::([A-Za-z_]+))?(?::([0-9.]+))?\]\]")
_SAFETY_MESSAGE = ("Unable to show the generated image. The image was filtered out because it violated Google's "
                   "Generative AI Prohibited Use policy. You will not be charged for blocked images. Try "
                   "rephrasing the prompt. If you think this was an error, send feedback.")
_PROHIBITED_MESSAGE = ("Unable to show the generated image. The image was filtered out because it violated "
                       "Google's Responsible AI practices. You will not be charged for blocked images. Try "
                       "rephrasing the prompt. If you think this was an error, send feedback. "
                       "Support code: 11030041.")
_QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. For more "
                  "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
                  "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_requests, "
                  "limit: 10, model: {model}\nPlease retry in {delay}s.")
ERRORS: dict[str, tuple[int, str, str]] = {
    "capacity": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "prepayment": (429, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted. Please go to AI Studio at "
                   "https://ai.studio/projects to manage your project and billing."),
    "internal": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                 "https://developers.generativeai.google/guide/troubleshooting"),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "deadline": (504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    "location": (400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
    "permission": (403, "PERMISSION_DENIED", "The caller does not have permission"),
}


def google_error(code: int, message: str, *, status: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> JSONResponse:
    """Google's error envelope: ``{"error": {"code", "message", "status", "details"?}}``."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS.get(code, "UNKNOWN")}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code, media_type="application/json; charset=UTF-8")


def quota_error(model: str, delay: float) -> JSONResponse:
    """A quota 429 as the spec records it: QuotaFailure, Help and RetryInfo, no Retry-After."""
    reject = quota_reject(model, delay)
    return google_error(429, reject.message, details=reject.fields["details"])


def quota_reject(model: str, delay: float) -> Reject:
    """The quota 429 as a `Reject` (see `quota_error`)."""
    internal = "gemini-2.5-flash-preview-image" if model.startswith("gemini-2.5") else model
    shown = f"{delay:g}"
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
            "quotaDimensions": {"location": "global", "model": internal}, "quotaValue": "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{shown}s"},
    ]
    return Reject(429, _QUOTA_MESSAGE.format(model=internal, delay=shown), details=details)


def refusal_body(kind: str, *, model: str = "gemini-3-pro-image", response_id: str = "emulated-refusal",
                 usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON of an HTTP-200 answer without an image (``kind``: a finish or block reason)."""
    usage = usage or {"promptTokenCount": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
                      "totalTokenCount": 8}
    top = {"usageMetadata": usage, "modelVersion": model, "responseId": response_id}
    if kind.startswith("BLOCK"):
        reason = kind.partition(":")[2] or "PROHIBITED_CONTENT"
        return {"promptFeedback": {"blockReason": reason}, **top}
    if kind == "TEXT_ONLY":
        text = ("I cannot fulfill this request. I can't create images that depict this; I can help with "
                "a different picture instead.")
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
    elif kind == "IMAGE_PROHIBITED_CONTENT":
        candidate = {"content": {"role": "model"}, "finishReason": kind, "finishMessage": _PROHIBITED_MESSAGE}
    elif kind == "IMAGE_SAFETY":
        candidate = {"content": {}, "finishReason": kind, "finishMessage": _SAFETY_MESSAGE}
    else:
        candidate = {"content": {}, "finishReason": kind}
    return {"candidates": [{**candidate, "index": 0}], **top}


def refusal_fault(kind: str = "IMAGE_SAFETY", **fields: Any) -> Fault:
    """A kit `Fault` that answers HTTP 200 with a refusal (see `refusal_body`), for fault plans."""
    return Fault("malformed", body=json.dumps(refusal_body(kind, **fields)).encode())


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def camelize(value: Any) -> Any:
    """proto3 JSON accepts snake_case too; the emulator reads everything as lowerCamelCase."""
    if isinstance(value, dict):
        return {(camel(k) if "_" in k and not k.startswith("@") else k): camelize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camelize(v) for v in value]
    return value


def refusal_kind(markers: set[str]) -> str | None:
    for marker in ("BLOCK_PROMPT", "TEXT_ONLY", "NO_IMAGE", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"):
        if marker in markers:
            return "BLOCK" if marker == "BLOCK_PROMPT" else marker
    for marker in sorted(markers):
        name, _, reason = marker.partition(":")
        if name == "BLOCK" and reason:
            return f"BLOCK:{reason}"
        if name == "FINISH" and reason:
            return reason
    return None


def vertexify(body: dict[str, Any]) -> None:
    """Vertex AI answers carry no ``index`` on candidates and report ``trafficType``."""
    for candidate in body.get("candidates", []):
        candidate.pop("index", None)
    usage = body.get("usageMetadata", {})
    usage.pop("serviceTier", None)
    usage["trafficType"] = "ON_DEMAND"


def check_fields(obj: Any, known: set[str], where: str) -> None:
    if not isinstance(obj, dict):
        raise Reject(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
    for key in obj:
        if key not in known:
            at = f" at '{where}'" if where else ""
            message = f"Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."
            raise Reject(400, message, details=[{
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f"{where}.{key}".strip("."), "description": message}]}])


def check_parts(contents: Any) -> None:
    if not isinstance(contents, list):
        raise Reject(400, "Invalid JSON payload received. 'contents' must be a list.")
    for c, content in enumerate(contents):
        for p, part in enumerate((content or {}).get("parts") or []):
            data = (part.get("inlineData") or {}).get("data") if isinstance(part, dict) else None
            if data is None:
                continue
            try:
                b64decode(data)
            except (ValueError, TypeError):
                raise Reject(400, f"Invalid value at 'contents[{c}].parts[{p}].inline_data.data' (TYPE_BYTES), "
                                  "Base64 decoding failed.") from None


def b64decode(data: str) -> bytes:
    """proto3 JSON bytes: standard or URL-safe base64, padded or not (google-genai sends URL-safe)."""
    text = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def prompt_of(body: dict[str, Any]) -> tuple[str, int]:
    """The text of the last user turn, and how many inline images the request carries."""
    contents = body["contents"]
    user_turns = [c for c in contents if (c or {}).get("role", "user") == "user"] or contents
    text = " ".join(str(p.get("text", "")) for p in (user_turns[-1] or {}).get("parts") or [] if isinstance(p, dict))
    images = sum(1 for c in contents for p in (c or {}).get("parts") or []
                 if isinstance(p, dict) and p.get("inlineData"))
    if not text.strip() and not images:
        raise Reject(400, "Request has empty input.")
    return text, images
