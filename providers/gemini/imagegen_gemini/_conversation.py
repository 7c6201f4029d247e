"""Multi-turn edits on Gemini: what one turn adds to a conversation, kept so that a later turn
(in this process or another) sends it back exactly as received.

Gemini 3 image models need the previous model turn back with every ``thoughtSignature``
unchanged (spec §3.3); google-genai's own chat keeps the whole candidate content, thought parts
included, and so does this. A turn is stored in its job's result metadata as
``metadata["conversation"] = [user content, model content]`` in the API's JSON, signatures
verbatim, with the image data that the job already holds elsewhere replaced by a reference:
``{"imagegenRef": "input", "index": i}`` (the request's i-th image) or ``"output"`` (the
result's i-th image), so the megabytes of an image are stored once. Thought images (interim
images) are not results, so they stay inline.
"""

from __future__ import annotations

import base64
from typing import Any

from imagegen import ImageRequest, ImageResult, Job

__all__ = ["KEY", "REF", "model_turn", "restore", "user_turn"]

REF = "imagegenRef"
#: Where a turn is kept in its result metadata.
KEY = "conversation"


def _is_result_image(part: dict[str, Any]) -> bool:
    """The same test ``_wire.read_answer`` applies: an ``image/*`` inline part that is no thought."""
    blob = part.get("inlineData")
    return (isinstance(blob, dict) and part.get("thought") is not True
            and str(blob.get("mimeType", "")).lower().startswith("image/"))


def _text(data: Any) -> Any:
    return base64.b64encode(data).decode("ascii") if isinstance(data, (bytes, bytearray)) else data


def user_turn(body: dict[str, Any], request: ImageRequest) -> dict[str, Any]:
    """This turn's user content (the last of ``body["contents"]``) with the request's own image
    bytes replaced by references; images fetched from a URL stay inline (the URL may be gone)."""
    content = body["contents"][-1]
    parts: list[dict[str, Any]] = []
    images = iter(range(len(request.images)))
    for part in content.get("parts", []):
        blob = part.get("inlineData")
        if isinstance(blob, dict):
            index = next(images, None)
            if index is not None and request.images[index].data is not None:
                part = {**part, "inlineData": {"mimeType": blob.get("mimeType"), REF: "input", "index": index}}
        parts.append(part)
    return {"role": content.get("role", "user"), "parts": parts}


def model_turn(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The answer's model content as received, result images replaced by references. Call it on
    the parsed answer *before* ``read_answer``, which releases each image's data once decoded."""
    candidates = answer.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) else {}
    content = first.get("content")
    if not isinstance(content, dict):
        return None
    parts: list[Any] = []
    outputs = 0
    for part in content.get("parts") or []:
        if not isinstance(part, dict):
            parts.append(part)
            continue
        kept = dict(part)  # every other field, thoughtSignature included, as received
        blob = part.get("inlineData")
        if _is_result_image(part) and isinstance(blob, dict):
            kept["inlineData"] = {"mimeType": blob["mimeType"], REF: "output", "index": outputs}
            outputs += 1
        elif isinstance(blob, dict):
            kept["inlineData"] = {**blob, "data": _text(blob.get("data"))}
        parts.append(kept)
    return {**{k: v for k, v in content.items() if k != "parts"}, "parts": parts}


def restore(job: Job) -> list[dict[str, Any]]:
    """The contents a finished turn adds to the conversation, images filled back in."""
    result: ImageResult | None = job.result
    stored = result.metadata.get(KEY) if result is not None else None
    if not isinstance(stored, list) or len(stored) != 2 or stored[1] is None:
        raise ValueError(f"job {job.id} holds no conversation turn")
    inputs = job.request.images if job.request is not None else []
    outputs = result.images if result is not None else []

    def fill(part: Any) -> Any:
        blob = part.get("inlineData") if isinstance(part, dict) else None
        if not isinstance(blob, dict) or REF not in blob:
            return part
        pool: list[Any] = list(inputs) if blob[REF] == "input" else list(outputs)
        index = int(blob["index"])
        if index >= len(pool) or pool[index].data is None:
            raise ValueError(f"job {job.id}: {blob[REF]} image {index} of the conversation is not stored")
        data = base64.b64encode(pool[index].data).decode("ascii")
        return {**part, "inlineData": {"mimeType": blob["mimeType"], "data": data}}

    return [{**content, "parts": [fill(p) for p in content.get("parts", [])]} for content in stored]
