"""Edits and multi-reference requests: images inline as bytes, paths or safely downloaded URLs."""

from __future__ import annotations

import base64

import pytest

from imagegen import Client, InvalidImageError, UnsupportedFeatureError
from imagegen.testing import FaultPlan

from .conftest import png_bytes


@pytest.fixture
def recorder(emulator):
    emulator.received.clear()
    return emulator


def _inline_parts(body: dict) -> list[dict]:
    return [p["inlineData"] for c in body["contents"] for p in c["parts"] if "inlineData" in p]


def test_multi_reference_edit_with_bytes_and_paths(client: Client, recorder, tmp_path) -> None:
    path = tmp_path / "villa.jpg"
    path.write_bytes(png_bytes(40, 30, "blue", "JPEG"))
    red = png_bytes(20, 20, "red")
    res = client.edit("put the red square on the villa's roof", images=[red, path], provider="gemini",
                      model="gemini-3-pro-image", aspect_ratio="4:3")
    assert (res.images[0].width, res.images[0].height) == (1200, 896)
    [body] = list(recorder.received)
    parts = body["contents"][0]["parts"]
    assert parts[0]["text"].startswith("put the red square")  # the instruction, then the images
    inline = _inline_parts(body)
    # google-genai 3.4 sends "mime_type" inside "inlineData"; proto3 JSON accepts either spelling.
    assert [p.get("mimeType") or p.get("mime_type") for p in inline] == ["image/png", "image/jpeg"]
    assert base64.urlsafe_b64decode(inline[0]["data"]) == red
    assert body["generationConfig"]["imageConfig"] == {"aspectRatio": "4:3"}
    assert body["generationConfig"]["candidateCount"] == 1
    # reference images are billed as input tokens (560 each on 3 Pro)
    assert res.usage.input_tokens >= 2 * 560


def test_url_input_is_downloaded_from_the_configured_host(client: Client, emulator, server, recorder) -> None:
    source = png_bytes(32, 32, "green")
    url = server.base_url + emulator.store_file(source, "image/png")
    res = client.edit("make it blue", images=[url], provider="gemini")
    assert res.images
    [inline] = _inline_parts(next(iter(recorder.received)))
    assert base64.urlsafe_b64decode(inline["data"]) == source


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://example.com/cat.png", "not https"),
    ("https://127.0.0.2/cat.png", "private or loopback"),
])
def test_unsafe_url_inputs_are_refused(client: Client, emulator, url: str, fragment: str) -> None:
    with pytest.raises(InvalidImageError) as info:
        client.edit("make it blue", images=[url], provider="gemini")
    assert fragment in str(info.value) and "input image 1" in str(info.value)
    assert emulator.counters.calls.get("total", 0) == 0


def test_url_that_is_not_an_image_is_refused(client: Client, emulator, server) -> None:
    url = server.base_url + emulator.store_file(b"<html>nope</html>", "text/html")
    with pytest.raises(InvalidImageError, match="not an image"):
        client.edit("make it blue", images=[url], provider="gemini")


def test_masks_are_rejected_with_a_helpful_message(client: Client, emulator) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        client.edit("replace the sky", images=[png_bytes()], mask=png_bytes(), provider="gemini")
    assert "does not support masks" in str(info.value)
    assert "describe the region to change in the prompt" in str(info.value)
    assert emulator.counters.calls.get("total", 0) == 0


def test_reference_limit_is_enforced(client: Client) -> None:
    with pytest.raises(UnsupportedFeatureError, match="at most 3"):
        client.edit("combine", images=[png_bytes()] * 4, provider="gemini", model="gemini-2.5-flash-image")


def test_fourteen_references_on_pro(client: Client, recorder) -> None:
    images = [png_bytes(16, 16, colour) for colour in ["red", "green", "blue", "white", "black", "yellow",
                                                        "orange", "purple", "pink", "gray", "cyan",
                                                        "magenta", "brown", "navy"]]
    res = client.edit("a collage", images=images, provider="gemini", model="gemini-3-pro-image")
    assert res.images and len(_inline_parts(next(iter(recorder.received)))) == 14


async def test_async_edit(aclient, emulator) -> None:
    emulator.faults = FaultPlan()
    res = await aclient.edit("make it blue", images=[png_bytes()], provider="gemini",
                             model="gemini-2.5-flash-image")
    # No ratio sent: the output takes the model's ratio nearest the 64x48 input's (4:3).
    assert res.images[0].mime_type == "image/png" and (res.images[0].width, res.images[0].height) == (1184, 864)
