"""``:streamGenerateContent``: one answer cut into the chunks the real API streams.

With ``?alt=sse`` each chunk is a Server-Sent Event, ``data: <GenerateContentResponse JSON>``
followed by a blank line (``\\r\\n`` line ends, as Google sends them). Without it the API answers
one JSON array of the same chunks. The image arrives whole in its own chunk; a last chunk
carries ``finishReason``, an empty text part, ``usageMetadata`` and any ``groundingMetadata``
(spec §2.1, §4.2, §10.6).
Thought signatures stay on the parts they belong to. A refusal is a single chunk.
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["SSE_MEDIA_TYPE", "sse_events", "stream_chunks"]

SSE_MEDIA_TYPE = "text/event-stream"


def stream_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The chunks of `body`, in order: one per content part, then the closing chunk."""
    candidates = body.get("candidates") or []
    parts = ((candidates[0].get("content") or {}).get("parts") or []) if candidates else []
    if not parts or candidates[0].get("finishReason") != "STOP":
        return [body]  # refusals and prompt blocks come as one chunk
    top: dict[str, Any] = {key: body[key] for key in ("modelVersion", "responseId", "createTime") if key in body}
    closing_only = ("content", "finishReason", "groundingMetadata")
    candidate = {key: value for key, value in candidates[0].items() if key not in closing_only}
    grounding = {k: v for k, v in candidates[0].items() if k == "groundingMetadata"}
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [copy.deepcopy(part)]}, **candidate}], **top}
              for part in parts]
    closing = {"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP",
                               **candidate, **grounding}],
               "usageMetadata": body.get("usageMetadata", {}), **top}
    return [*chunks, closing]


async def sse_events(chunks: list[dict[str, Any]],
                     before_image: Callable[[], Awaitable[object]]) -> AsyncIterator[bytes]:
    """Encode `chunks` as SSE events; `before_image` runs before the first image is sent (the
    time the model spends drawing it)."""
    waited = False
    for chunk in chunks:
        if not waited and _has_image(chunk):
            await before_image()
            waited = True
        yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\r\n\r\n"


def _has_image(chunk: dict[str, Any]) -> bool:
    for candidate in chunk.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "inlineData" in part and not part.get("thought"):
                return True
    return False
