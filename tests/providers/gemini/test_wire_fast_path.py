"""The one-pass reader of well-formed answers must agree with the tolerant one, and refuse what it refuses."""

import base64
import json

import pytest

from imagegen import InvalidResponseError
from imagegen.testing import synth_image
from imagegen_gemini import _wire
from imagegen_gemini._provider import GeminiProvider

SPEC = next(s for s in GeminiProvider.models() if s.id == "gemini-3-pro-image")


def answer(data: str, *, spaced: bool = False) -> str:
    body = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "here it is"}, {"inlineData": {"mimeType": "image/jpeg", "data": data}}]},
        "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1120},
        "responseId": "r1"}
    return json.dumps(body, indent=1 if spaced else None)


@pytest.mark.parametrize("spaced", [False, True])
def test_fast_and_tolerant_paths_read_the_same_answer(spaced):
    image = synth_image(64, 48, "jpeg", seed=3)
    body = answer(base64.b64encode(image).decode(), spaced=spaced)
    fast = _wire.parse_body(body)
    assert isinstance(fast["candidates"][0]["content"]["parts"][1]["inlineData"]["data"], bytes)
    read = _wire.read_answer(fast, SPEC, provider="gemini")
    assert read.images[0].data == image and (read.images[0].width, read.images[0].height) == (64, 48)
    assert read.text == ["here it is"] and read.metadata["response_id"] == "r1"
    assert _wire.read_answer(__import__("json").loads(body), SPEC, provider="gemini").images[0].data == image


def test_cut_off_base64_is_refused_not_half_decoded():
    encoded = base64.b64encode(synth_image(64, 48, "jpeg", seed=3)).decode()
    body = answer(encoded[: len(encoded) - 5])  # still valid JSON, base64 cut mid-way
    with pytest.raises(InvalidResponseError, match="unreadable image"):
        _wire.read_answer(_wire.parse_body(body), SPEC, provider="gemini")
