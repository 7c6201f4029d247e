"""The Gemini emulator's answers: the ``GenerateContentResponse`` for a valid request.

Shapes follow the recorded responses: lowerCamelCase, standard base64 images of the documented
size, ``usageMetadata`` with ``total = prompt + candidates + thoughts``, ``thoughtSignature``
on the first part and on image parts (3.x), thought parts when ``includeThoughts`` is set.
"""

from __future__ import annotations

import base64
import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagegen import ModelSpec, Usage

from ._catalog import ANY_SIZE, expected_pixels, tokens_per_image
from ._emulator_request import Settings, nearest_ratio
from ._emulator_shapes import MARKER, refusal_body, refusal_kind, vertexify
from ._emulator_turns import issue_signature
from ._pricing import cost_of

if TYPE_CHECKING:
    from .emulator import GeminiEmulator

__all__ = ["Answer", "build_answer", "count_tokens", "grounding_metadata", "output_pixels"]

_CAPTIONS = ("Here is the picture: {prompt}", "And a second take on the same idea.")
_THOUGHT = "**Composing the scene**\n\nI am placing the subject and checking the layout."


@dataclass
class Answer:
    """A response body, and what the emulator does around sending it."""

    body: dict[str, Any]
    #: megapixels generated (for the latency model) and US dollars to charge
    megapixels: float
    usd: float


def output_pixels(emu: GeminiEmulator, spec: ModelSpec, settings: Settings) -> tuple[int, int]:
    """The size of a generated image: the table's size for the ratio sent; for an edit with
    no ratio, the table's size for the model's ratio nearest the input image's shape (the API
    matches the output to the input); otherwise the observed default (or 1:1 if asked)."""
    ratio = settings.ratio
    if ratio is None and settings.input_shape is not None:
        ratio = nearest_ratio(settings.input_shape, spec.aspect_ratios)
    if ratio is None and emu.default_shape == "square":
        ratio = "1:1"
    width, height = expected_pixels(spec, ratio, settings.size)
    scale = emu.image_scale
    return max(8, round(width * scale)), max(8, round(height * scale))


def build_answer(emu: GeminiEmulator, prompt: str, input_images: int, settings: Settings, spec: ModelSpec,
                 *, vertex: bool) -> Answer:
    """The answer to a request that passed the checks (a refusal when the prompt says so)."""
    response_id = _response_id(emu)
    extra = spec.extra["emulator"]
    markers = {name if not kind else f"{name}:{kind}" for name, kind, _ in MARKER.findall(prompt)}
    prompt_tokens = max(1, math.ceil(len(prompt) / 4))
    image_prompt_tokens = input_images * int(spec.extra.get("input_tokens_per_image", 258))
    thoughts = int(extra["thoughts_tokens"])
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens + image_prompt_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]
        + ([{"modality": "IMAGE", "tokenCount": image_prompt_tokens}] if input_images else []),
    }
    refusal = refusal_kind(markers)
    if refusal is not None:
        if thoughts and not refusal.startswith("BLOCK"):
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage.get("thoughtsTokenCount", 0)
        body = refusal_body(refusal, model=spec.id, response_id=response_id, usage=usage)
        if vertex:
            vertexify(body)
        return Answer(body, 0.0, 0.0)
    width, height = output_pixels(emu, spec, settings)
    parts, images, text_tokens = _parts(emu, prompt, markers, settings, spec, response_id, (width, height))
    image_tokens = images * tokens_per_image(spec, settings.size if spec.sizes else ANY_SIZE)
    candidates = image_tokens + text_tokens + int(extra["hidden_output_tokens"])
    usage["candidatesTokenCount"] = candidates
    usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    usage["totalTokenCount"] = usage["promptTokenCount"] + candidates + thoughts
    usage["serviceTier"] = "standard"
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    if settings.grounding and spec.extra.get("grounding", spec.id != "gemini-2.5-flash-image"):
        candidate["groundingMetadata"] = grounding_metadata(prompt, response_id)
    body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": spec.id, "responseId": response_id}
    if vertex:
        vertexify(body)
    billed = Usage(input_tokens=usage["promptTokenCount"], output_tokens=candidates + thoughts,
                   image_tokens=image_tokens)
    return Answer(body, images * width * height / 1e6, cost_of(billed, spec).usd or 0.0)


def _parts(emu: GeminiEmulator, prompt: str, markers: set[str], settings: Settings, spec: ModelSpec,
           response_id: str, size: tuple[int, int]) -> tuple[list[dict[str, Any]], int, int]:
    """Content parts: thoughts (if asked), captions (if TEXT is allowed) and images."""
    extra = spec.extra["emulator"]
    mime = settings.output_mime or spec.extra["output_mime"]
    fmt = mime.split("/")[1]
    width, height = size
    parts: list[dict[str, Any]] = []
    if settings.include_thoughts and extra["thoughts_tokens"]:
        parts.append({"text": _THOUGHT, "thought": True})
        interim = emu.image(max(8, width // 4), max(8, height // 4), fmt)
        parts.append({"inlineData": {"mimeType": mime, "data": base64.b64encode(interim).decode()},
                      "thought": True})
    count = 2 if "TWO_IMAGES" in markers else 1
    text_tokens = 0
    for index in range(count):
        if settings.text_allowed and (extra["caption"] or count > 1):
            caption = _CAPTIONS[index].format(prompt=prompt[:80].strip())
            parts.append({"text": caption})
            text_tokens += math.ceil(len(caption) / 4)
        data = base64.b64encode(emu.image(width, height, fmt)).decode()
        parts.append({"inlineData": {"mimeType": mime, "data": data}})
    if extra["signatures"]:
        parts[0]["thoughtSignature"] = issue_signature(emu.seed, response_id, 0, size=emu.signature_bytes)
        for index, part in enumerate(parts):
            if "inlineData" in part:
                part["thoughtSignature"] = issue_signature(emu.seed, response_id, index, size=emu.signature_bytes)
    return parts, count, text_tokens


def grounding_metadata(prompt: str, response_id: str) -> dict[str, Any]:
    """What a Google Search grounded answer carries (the recorded shape; the sources are made up)."""
    query = " ".join(prompt.split()[:8]) or "image"
    chunks = [{"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/{response_id}-{i}",
                       "title": title}} for i, title in enumerate(("example.com", "example.org"))]
    rendered = (f'<style>.chip{{display:inline-block}}</style><div class="container">'
                f'<a class="chip" href="https://www.google.com/search?q={query.replace(" ", "+")}">{query}</a></div>')
    return {"groundingChunks": chunks, "searchEntryPoint": {"renderedContent": rendered}, "webSearchQueries": [query]}


def count_tokens(body: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """``:countTokens``: the prompt's tokens as ``generateContent`` would count them."""
    inner = body.get("generateContentRequest")
    request: dict[str, Any] = inner if isinstance(inner, dict) else body
    contents = request.get("contents") or []
    text = " ".join(str(part.get("text", "")) for content in contents if isinstance(content, dict)
                    for part in content.get("parts") or [] if isinstance(part, dict))
    images = sum(1 for content in contents if isinstance(content, dict)
                 for part in content.get("parts") or [] if isinstance(part, dict) and part.get("inlineData"))
    text_tokens = math.ceil(len(text) / 4) if text.strip() else 0
    image_tokens = images * int(spec.extra.get("input_tokens_per_image", 258))
    details = [{"modality": "TEXT", "tokenCount": text_tokens}]
    if images:
        details.append({"modality": "IMAGE", "tokenCount": image_tokens})
    return {"totalTokens": text_tokens + image_tokens, "promptTokensDetails": details}


def _response_id(emu: GeminiEmulator) -> str:
    digest = hashlib.sha256(f"gemini:{emu.seed}:{emu.next_number()}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:17]).decode().rstrip("=")

