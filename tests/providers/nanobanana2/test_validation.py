"""Requests the provider refuses before any network call, each with a message naming the fix."""

from __future__ import annotations

import pytest

from imagegen import Client, InvalidRequestError, UnsupportedFeatureError
from imagegen.testing import serve

from .conftest import config, make_emulator


@pytest.fixture(scope="module")
def server_and_emulator():
    emulator = make_emulator()
    with serve(emulator) as server:
        yield server, emulator


@pytest.fixture
def client(server_and_emulator):
    server, _ = server_and_emulator
    with Client(config(server)) as c:
        yield c


CASES = [
    # (operation, kwargs, error class, message fragment)
    ("generate", {"options": {"guidance_scale": 50}}, InvalidRequestError, "guidance_scale=50 is out of range"),
    ("generate", {"options": {"guidance_scale": "high"}}, InvalidRequestError, "must be a number"),
    ("generate", {"options": {"style_strength": 0.5}}, InvalidRequestError, "needs style_reference_url"),
    ("generate", {"options": {"style_reference_url": "https://x/s.png", "style_strength": 1.5}},
     InvalidRequestError, "style_strength=1.5 is out of range"),
    ("generate", {"options": {"style_reference_url": "ftp://x"}}, InvalidRequestError, "http(s) URL"),
    ("generate", {"options": {"blend": True}}, UnsupportedFeatureError, "apply to edit() only"),
    ("generate", {"options": {"check_credits": "yes"}}, InvalidRequestError, "true or false"),
    ("generate", {"options": {"safety": "strict"}}, UnsupportedFeatureError, "not understood"),
    ("generate", {"images": ["BYTES"]}, UnsupportedFeatureError, "use edit() to upload"),
    ("generate", {"aspect_ratio": "auto"}, UnsupportedFeatureError, "edit() only"),
    ("generate", {"aspect_ratio": "1:8"}, UnsupportedFeatureError, "use one of 1:1"),
    ("generate", {"size": "4K"}, UnsupportedFeatureError, "leave size unset"),
    ("generate", {"output_format": "webp"}, UnsupportedFeatureError, "use one of png, jpeg"),
    ("generate", {"seed": -1}, InvalidRequestError, "seed -1 is out of range"),
    ("generate", {"webhook_url": "mailto:me"}, InvalidRequestError, "http(s) URL"),
    ("edit", {"images": ["BYTES", "BYTES"]}, InvalidRequestError, "options={'blend': True}"),
    ("edit", {"images": ["BYTES"], "options": {"blend": True}}, InvalidRequestError, "exactly 2 images"),
    ("edit", {"images": ["BYTES"] * 3, "options": {"blend": True}}, InvalidRequestError, "exactly 2 images"),
    ("edit", {"images": ["BYTES"] * 2, "options": {"blend": True, "blend_strength": 2}},
     InvalidRequestError, "blend_strength=2 is out of range"),
    ("edit", {"images": ["BYTES"], "options": {"blend_strength": 0.5}}, InvalidRequestError, "needs blend"),
    ("edit", {"images": ["BYTES"] * 2, "options": {"blend": True}, "aspect_ratio": "1:1"},
     UnsupportedFeatureError, "does not take aspect_ratio"),
    ("edit", {"images": ["https://example.com/a.png"]}, UnsupportedFeatureError, "not a URL"),
    ("edit", {"images": ["BYTES"], "seed": 3}, UnsupportedFeatureError, "seed can only be sent to /generate"),
    ("edit", {"images": ["BYTES"], "options": {"guidance_scale": 5}}, UnsupportedFeatureError, "/generate"),
    ("edit", {"images": ["BYTES"], "n": 2}, UnsupportedFeatureError, "use n=1"),
    ("edit", {"images": ["BYTES"], "mask": "BYTES"}, UnsupportedFeatureError, "does not support masks"),
]


@pytest.mark.parametrize(("operation", "kwargs", "error", "fragment"), CASES,
                         ids=[f"{c[0]}-{c[3][:24]}" for c in CASES])
def test_refused_before_sending(client, server_and_emulator, png, operation, kwargs, error, fragment):
    _, emulator = server_and_emulator
    emulator.counters.reset()
    kwargs = {k: ([png if v == "BYTES" else v for v in val] if isinstance(val, list) else
                  (png if val == "BYTES" else val)) for k, val in kwargs.items()}
    with pytest.raises(error) as info:
        if operation == "generate":
            client.generate("a fox", provider="nanobanana2", **kwargs)
        else:
            images = kwargs.pop("images")
            client.edit("a fox", images=images, provider="nanobanana2", **kwargs)
    assert fragment in str(info.value)
    assert emulator.counters.calls.get("total", 0) == 0


def test_estimate_needs_no_network(client, server_and_emulator):
    _, emulator = server_and_emulator
    emulator.counters.reset()
    cost = client.estimate("a fox", provider="nanobanana2", n=3)
    assert (cost.usd, cost.credits, cost.estimated) == (pytest.approx(0.117), 12, True)
    assert emulator.counters.calls.get("total", 0) == 0
