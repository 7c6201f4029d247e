"""What goes over the wire for ``generateContent``: building the call, reading the answer and
the error envelope.

Pure functions with no I/O, so every call path (generate, edit, submit, vendor batches) shares
them. No google-genai import at module level: only the public-SDK fallback (``sdk_arguments``)
needs it.

Reading an answer follows Google's documented rules (docs/providers/gemini.md): images are every
non-thought part whose ``inlineData`` is ``image/*``, in order, wherever they sit among the parts;
their size comes from the bytes; HTTP 200 without an image becomes a typed refusal carrying the
model's own words and the usage it still reported.

Error answers (``{"error": {code, message, status, details: [google.rpc.*]}}``): the status table
(``GeminiProvider.status_errors``) names the class for each HTTP status; ``read_google_error``
adds what the body says that the status alone does not: an invalid key answered as 400, a
missing key as 403, a region refusal (FAILED_PRECONDITION), prepaid credits used up (a 429 that
retrying will not cure), and the wait of ``RetryInfo``. (DEADLINE_EXCEEDED is always HTTP 504.)
"""

from __future__ import annotations

import base64
import functools
import json
import re
from typing import Any

import pydantic_core
from pydantic import ConfigDict, TypeAdapter
from typing_extensions import TypedDict

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    Image,
    ImageRequest,
    ImageResult,
    InsufficientCreditsError,
    InvalidResponseError,
    ModelSpec,
    NoImageReturnedError,
    PermissionDeniedError,
    ProviderError,
    Usage,
)
from imagegen.provider import ErrorDetails, ErrorReply, decode_image, json_object, json_objects, parse_wait_hint

from ._pricing import cost_of

__all__ = ["DEFAULT_MODALITIES", "build_body", "error_message", "parse_body", "read_answer", "read_google_error",
           "sdk_arguments", "usage_of"]

#: Text and image: the model's own words (captions, refusals) reach the caller as ``text``.
DEFAULT_MODALITIES = ("TEXT", "IMAGE")
#: Finish and block reasons that mean "refused on policy grounds" (others: no image returned).
POLICY_REASONS = frozenset({
    "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR", "JAILBREAK",
})


# -- the request -------------------------------------------------------------------------------


def build_body(request: ImageRequest, images: list[tuple[bytes, str]]) -> dict[str, Any]:
    """The ``generateContent`` request body, in the API's own JSON spelling.

    The user turn holds the instruction first, then every reference image inline, in order;
    ``generationConfig`` carries ``imageConfig`` nested, as the API requires. Built here rather
    than through the SDK's request models: they cost more than a millisecond a call (see
    benchmarks/results/gemini_overhead.md) and send the same JSON (a test compares the two).
    """
    options = request.options
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    parts.extend({"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode("ascii")}}
                 for data, mime in images)
    generation: dict[str, Any] = {
        "responseModalities": list(options.get("response_modalities") or DEFAULT_MODALITIES),
        "candidateCount": 1,
    }
    if request.seed is not None:
        generation["seed"] = request.seed
    # 2.5 Flash Image never gets a size here: validation refuses one (it has a single size).
    image_config = {key: value for key, value in (("aspectRatio", request.aspect_ratio),
                                                  ("imageSize", request.size)) if value is not None}
    if image_config:
        generation["imageConfig"] = image_config
    if "include_thoughts" in options or "thinking_level" in options:
        level = options.get("thinking_level")
        thinking = {"includeThoughts": options.get("include_thoughts"),
                    "thinkingLevel": level.upper() if isinstance(level, str) else None}
        generation["thinkingConfig"] = {k: v for k, v in thinking.items() if v is not None}
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}], "generationConfig": generation}
    if options.get("google_search"):
        body["tools"] = [{"googleSearch": {}}]
    return body


def sdk_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """The same request as ``generate_content`` keyword arguments (the SDK's public path).

    ``should_return_http_response`` keeps the raw body: the SDK's parsed answer drops
    ``finishMessage`` and ``serviceTier``.
    """
    from google.genai import types

    config = {**body["generationConfig"], "shouldReturnHttpResponse": True}
    if "tools" in body:
        config["tools"] = body["tools"]
    # From JSON, so the base64 of inline images decodes to bytes (from Python it would not).
    contents = [types.Content.model_validate_json(json.dumps(turn)) for turn in body["contents"]]
    return {"contents": contents, "config": types.GenerateContentConfig.model_validate_json(json.dumps(config))}


# -- the answer --------------------------------------------------------------------------------


class _InlineData(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow", val_json_bytes="base64")  # type: ignore[misc]
    mimeType: str
    data: bytes


class _Part(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    inlineData: _InlineData


class _Content(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    parts: list[_Part]


class _Candidate(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    content: _Content


class _Answer(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    candidates: list[_Candidate]


@functools.cache
def _well_formed() -> TypeAdapter[_Answer]:
    """The well-formed answer in one pass of pydantic-core: JSON and each image's base64 decoded
    together, with no intermediate Python copy of the megabytes of base64 (half the time of
    parsing, then decoding, at 4K). Anything unusual falls back to the tolerant path below."""
    return TypeAdapter(_Answer)


def _padded(body: str) -> bool:
    """Every ``"data": "<base64>"`` value has a length divisible by 4. pydantic-core decodes
    unpadded base64 too, but a cut-off image must be refused, not half-decoded."""
    start = 0
    while (at := body.find('"data"', start)) != -1:
        i = at + 6
        while i < len(body) and body[i] in " \t\r\n:":
            i += 1
        if i < len(body) and body[i] == '"':
            end = body.find('"', i + 1)
            if end == -1 or (end - i - 1) % 4:
                return False
            start = end + 1
        else:
            start = i
    return True


def parse_body(body: str | bytes | None) -> dict[str, Any]:
    """The raw JSON answer. It is read rather than the SDK's parsed object because the SDK drops
    fields a caller needs: ``finishMessage`` (the model's own words on a blocked image) and
    ``usageMetadata.serviceTier``. Image data comes back already decoded (bytes) from the fast
    path, else as text. Call it inside ``parsing()``: what is not a JSON object raises there."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    if _padded(text):
        try:
            return dict(_well_formed().validate_json(text))
        except pydantic_core.ValidationError:
            pass  # not the usual shape: the tolerant path reads what it can and says what is wrong
    data = pydantic_core.from_json(body or "")  # the same result as json.loads, about 2x faster
    if not isinstance(data, dict):
        raise TypeError("the answer is JSON but not an object")
    return data


def read_answer(data: dict[str, Any], spec: ModelSpec, *, provider: str) -> ImageResult:
    """The result in the parsed answer (its ``job_id`` left to the caller), or the refusal it
    stands for. Unknown fields are ignored. Each image's base64 leaves the answer as it is decoded."""
    usage = usage_of(data.get("usageMetadata"))
    candidates = json_objects(data.get("candidates"))
    images: list[Image] = []
    text: list[str] = []
    signatures: list[str] = []
    warnings: list[str] = []
    thought_parts = 0
    for candidate in candidates:
        content = json_object(candidate.get("content"))
        for part in json_objects(content.get("parts")):
            if part.get("thoughtSignature"):
                signatures.append(str(part["thoughtSignature"]))
            if part.get("thought") is True:
                thought_parts += 1  # interim images and thought summaries are not results
                continue
            blob = part.get("inlineData")
            if isinstance(blob, dict) and str(blob.get("mimeType", "")).lower().startswith("image/"):
                images.append(decode_image(blob.pop("data", None) or "", provider=provider,
                                           declared=str(blob["mimeType"]), warnings=warnings))
            elif isinstance(part.get("text"), str) and part["text"]:
                text.append(part["text"])
    first = candidates[0] if candidates else {}
    metadata: dict[str, Any] = {
        "response_id": data.get("responseId"),
        "model_version": data.get("modelVersion"),
        "finish_reason": first.get("finishReason"),
        "thought_signatures": signatures,
    }
    if thought_parts:
        metadata["thought_parts"] = thought_parts
    if isinstance(first.get("groundingMetadata"), dict):
        metadata["grounding"] = first["groundingMetadata"]
    if not images:
        raise _refusal(data, candidates, usage, text, provider=provider)
    return ImageResult(images=images, provider=provider, model=spec.id, cost=cost_of(usage, spec), usage=usage,
                       text=text, metadata=metadata, warnings=warnings)


def _refusal(data: dict[str, Any], candidates: list[dict[str, Any]], usage: Usage, text: list[str],
             *, provider: str) -> ProviderError:
    """HTTP 200 without an image: content policy, no image, or an unreadable answer."""
    feedback = json_object(data.get("promptFeedback"))
    block = feedback.get("blockReason")
    first = candidates[0] if candidates else {}
    finish = first.get("finishReason")
    finish_message = first.get("finishMessage") or feedback.get("blockReasonMessage")
    finish_message = finish_message if isinstance(finish_message, str) else None
    words = " ".join(t.strip() for t in text if t.strip()) or None
    body = {"finish_reason": finish, "block_reason": block, "finish_message": finish_message,
            "text": words, "usage": usage.model_dump(exclude_none=True), "response_id": data.get("responseId")}
    own_words = finish_message or words
    said = f": {own_words.rstrip().rstrip('.')}" if own_words else ""
    if block:
        return ContentPolicyError(
            f"{provider} blocked the prompt (promptFeedback.blockReason {block}){said}. "
            "Rephrase the prompt; retrying the same prompt will not help.",
            provider=provider, status_code=200, reason=str(block), provider_message=own_words, body=body)
    if not candidates:
        return InvalidResponseError(
            f"{provider} answered HTTP 200 with neither candidates nor promptFeedback; "
            "the answer is not a generateContent response", provider=provider, status_code=200, body=body)
    if str(finish).upper() in POLICY_REASONS:
        return ContentPolicyError(
            f"{provider} refused to return an image (finishReason {finish}){said}. Rephrase the prompt.",
            provider=provider, status_code=200, reason=str(finish), provider_message=own_words, body=body)
    return NoImageReturnedError(
        f"{provider} returned no image (finishReason {finish or 'none'}){said}. "
        "Ask for an image explicitly in the prompt, or try another model.",
        provider=provider, status_code=200, text=words, body=body)


# -- usage -----------------------------------------------------------------------------------


def usage_of(meta: Any) -> Usage:
    """``usageMetadata`` as imagegen's Usage; output counts candidates and thinking tokens."""
    if not isinstance(meta, dict):
        return Usage()
    candidates = _count(meta.get("candidatesTokenCount"))
    image = sum(_count(d.get("tokenCount")) for d in json_objects(meta.get("candidatesTokensDetails"))
                if str(d.get("modality", "")).upper() == "IMAGE")
    thoughts = _count(meta.get("thoughtsTokenCount"))
    extra = {key: meta[camel] for key, camel in (("total_tokens", "totalTokenCount"),
                                                   ("service_tier", "serviceTier"),
                                                   ("traffic_type", "trafficType")) if camel in meta}
    return Usage(input_tokens=_count(meta.get("promptTokenCount")), output_tokens=candidates + thoughts,
                 image_tokens=image, text_tokens=max(0, candidates - image), thoughts_tokens=thoughts,
                 extra=extra)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# -- error answers ----------------------------------------------------------------------------


_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def error_message(text: str) -> str:
    """Google's message, or what an HTML page in its place is (a proxy's, a load balancer's)."""
    text = text.strip()
    if "<html" in text[:512].lower() or "<title" in text.lower():
        title = _TITLE.search(text)
        return f"an HTML page ({title.group(1).strip()!r})" if title else "an HTML page"
    return text[:600]


def _rpc(details: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((d for d in details if str(d.get("@type", "")).endswith(kind)), {})


def read_google_error(reply: ErrorReply, *, replacement: str | None = None) -> ErrorDetails:
    """What one error answer says; ``replacement`` names the model that replaced a retired one."""
    body = json_object(reply.body)
    error = body["error"] if isinstance(body.get("error"), dict) else body
    message = error_message(str(error.get("message") or reply.text or ""))
    status = str(error.get("status") or "") or None
    details = json_objects(error.get("details"))
    read = ErrorDetails(message=message or None, code=status)
    code = reply.status_code
    if _rpc(details, "google.rpc.ErrorInfo").get("reason") == "API_KEY_INVALID" or "API key not valid" in message:
        read.error, read.advice = AuthenticationError, "check GEMINI_API_KEY or the configured api_key"
    elif code == 403 and "unregistered callers" in message:
        read.error, read.advice = AuthenticationError, "no API key was sent: set GEMINI_API_KEY or api_key"
    elif status == "FAILED_PRECONDITION":
        read.error = PermissionDeniedError
    elif code == 404:
        read.advice = (f"it was replaced by {replacement}" if replacement
                       else "check the model id with `imagegen providers`")
    elif code == 429 and ("prepayment" in message.lower() or "credits are depleted" in message.lower()):
        read.error = InsufficientCreditsError
        read.advice = "prepaid credits are used up: add credits in Google AI Studio billing; retrying will not help"
    elif code == 429:
        wait = parse_wait_hint(_rpc(details, "google.rpc.RetryInfo").get("retryDelay"))
        if wait is None and (match := _RETRY_IN.search(message)):
            wait = float(match.group(1))
        read.retry_after = wait
        read.advice = "quota exceeded; retry later" if wait is not None else "capacity exhausted; retry shortly"
    return read
