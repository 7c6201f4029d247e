"""Multi-turn requests in the Gemini emulator: thought signatures it can check.

Gemini 3 image models sign the first part and the image parts of each answer
(``thoughtSignature``) and expect a later turn to send that model turn back with every
signature unchanged (spec §3.3); the finish reason ``MISSING_THOUGHT_SIGNATURE`` exists for a
turn that does not (spec §5.1). Real signatures are opaque; the emulator's are verifiable
without keeping state: each one carries the answer id and the part index it was issued for,
sealed with an HMAC keyed by the emulator's seed. So a request whose earlier model turns lack a
signature where one was issued, or carry one that was altered, moved to another part or made
up, is answered as the spec describes: HTTP 200, ``finishReason: MISSING_THOUGHT_SIGNATURE``,
no image (or, with ``missing_signature="400"``, the 400 some reports describe).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

from imagegen import ModelSpec
from imagegen.testing import Reject

from ._emulator_shapes import b64decode, refusal_body

__all__ = ["check_signatures", "issue_signature", "verify_signature"]

_MAGIC = b"igsig1"
_MAC_BYTES = 32


def _key(seed: int) -> bytes:
    return hashlib.sha256(f"imagegen-gemini-emulator:{seed}".encode()).digest()


def issue_signature(seed: int, response_id: str, index: int, *, size: int = 0) -> str:
    """A signature for part ``index`` of answer ``response_id``. ``size`` pads it to about that
    many base64 characters (real ones are 1.1 to 2.9 MB), for memory and storage tests."""
    payload = f"{response_id}:{index}".encode()
    mac = hmac.new(_key(seed), payload, hashlib.sha256).digest()
    raw = _MAGIC + len(payload).to_bytes(2, "big") + payload + mac
    if size > 0:
        raw += hashlib.shake_256(raw).digest(max(0, size * 3 // 4 - len(raw)))
    return base64.b64encode(raw).decode("ascii")


def verify_signature(seed: int, signature: Any) -> tuple[str, int] | None:
    """The (answer id, part index) a signature was issued for, or None if it is not one of ours."""
    if not isinstance(signature, str):
        return None
    try:
        # proto3 JSON bytes: google-genai sends the signature back URL-safe, as it does inline data.
        raw = b64decode(signature)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_MAGIC) or len(raw) < len(_MAGIC) + 2:
        return None
    length = int.from_bytes(raw[len(_MAGIC):len(_MAGIC) + 2], "big")
    start = len(_MAGIC) + 2
    payload, mac = raw[start:start + length], raw[start + length:start + length + _MAC_BYTES]
    if not hmac.compare_digest(mac, hmac.new(_key(seed), payload, hashlib.sha256).digest()):
        return None
    # The padding is derived from what precedes it: a signature cut short or extended fails.
    if raw[start + length + _MAC_BYTES:] != hashlib.shake_256(raw[:start + length + _MAC_BYTES]).digest(
            len(raw) - start - length - _MAC_BYTES):
        return None
    response_id, _, index = payload.decode("utf-8", "replace").rpartition(":")
    return (response_id, int(index)) if index.isdigit() else None


def _needs_signature(index: int, part: dict[str, Any]) -> bool:
    # Where the emulator puts them, as in the recorded 3.x answers: the first part, image parts.
    return index == 0 or isinstance(part.get("inlineData"), dict)


def _violation(seed: int, contents: list[Any]) -> str | None:
    """Where an earlier model turn lost or changed a signature, or None if every one came back."""
    for c, content in enumerate(contents):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        answer: str | None = None
        for p, part in enumerate(parts):
            signature = part.get("thoughtSignature")
            if signature is None:
                if _needs_signature(p, part):
                    return f"contents[{c}].parts[{p}] has no thought_signature"
                continue
            issued = verify_signature(seed, signature)
            if issued is None:
                return f"contents[{c}].parts[{p}].thought_signature is not a signature this model issued"
            if issued[1] != p or (answer is not None and issued[0] != answer):
                return f"contents[{c}].parts[{p}].thought_signature belongs to another part"
            answer = issued[0]
    return None


def check_signatures(body: dict[str, Any], spec: ModelSpec, *, seed: int,
                     status: str = "finish") -> dict[str, Any] | None:
    """The spec's answer when an earlier model turn lost a signature, else None.

    Models that sign nothing (2.5 Flash Image) take any history. ``status`` is ``"finish"``
    (the HTTP-200 answer with ``MISSING_THOUGHT_SIGNATURE`` is returned) or ``"400"`` (a
    `Reject` is raised).
    """
    if not spec.extra.get("emulator", {}).get("signatures"):
        return None
    problem = _violation(seed, body.get("contents") or [])
    if problem is None:
        return None
    if status == "400":
        raise Reject(400, f"Unable to process the request: {problem}. Send the previous model turn back "
                          "exactly as received, with every thought_signature.")
    usage = {"promptTokenCount": 8, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
             "totalTokenCount": 8}
    answer = refusal_body("MISSING_THOUGHT_SIGNATURE", model=spec.id, response_id=f"missing-signature-{seed}",
                          usage=usage)
    answer["candidates"][0]["finishMessage"] = f"{problem}."
    return answer
