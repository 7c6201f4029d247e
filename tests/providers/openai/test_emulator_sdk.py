"""The emulator driven by the official ``openai`` SDK (and by raw HTTP where the SDK has no form)."""

from __future__ import annotations

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image as PILImage

from .conftest import API_KEY, mask, png


def sdk(server, *, key: str = API_KEY, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=server.base_url + "/v1", max_retries=0, **kwargs)


def decoded(b64: str) -> tuple[str, int, int, str]:
    with PILImage.open(io.BytesIO(base64.b64decode(b64))) as img:
        return img.format, img.width, img.height, img.mode


def test_generation_with_every_option(start):
    emulator, server = start(image_scale=0.25)
    client = sdk(server, organization="org-abc", project="proj_xyz")
    raw = client.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a stop sign", n=2, size="1536x864", quality="low", output_format="webp",
        output_compression=42, background="transparent", moderation="low")
    answer = raw.parse()
    assert (answer.size, answer.quality, answer.output_format, answer.background) == ("1536x864", "low", "webp",
                                                                                     "transparent")
    assert [decoded(item.b64_json)[:3] for item in answer.data] == [("WEBP", 384, 216)] * 2
    assert answer.usage.output_tokens == 2 * 120 and answer.usage.output_tokens_details.image_tokens == 240
    assert raw.headers["openai-organization"] == "org-abc" and raw.headers["openai-project"] == "proj_xyz"
    assert raw.headers["x-request-id"].startswith("req_") and len(raw.headers["x-request-id"]) == 36
    assert emulator.counters.charges[0]["ref"] == raw.headers["x-request-id"]


def test_multipart_edit_with_several_images_and_a_mask(start):
    emulator, server = start()
    client = sdk(server)
    answer = client.images.edit(model="gpt-image-2", prompt="put a hat on it",
                                image=[("a.png", png(), "image/png"), ("b.png", png(), "image/png")],
                                mask=("mask.png", mask(), "image/png"), size="1024x1024", quality="medium")
    assert answer.usage.input_tokens_details.image_tokens == 2 * 64
    assert [f[0] for f in emulator.received[-1]["files"]] == ["image[]", "image[]", "mask"]


def test_a_mask_without_alpha_or_of_another_size_is_refused(start):
    _, server = start()
    client = sdk(server)
    for bad_mask, words in [(png(), "alpha channel"), (mask(32, 32), "same dimensions")]:
        with pytest.raises(openai.BadRequestError) as info:
            client.images.edit(model="gpt-image-2", prompt="x", image=("a.png", png(), "image/png"),
                               mask=("m.png", bad_mask, "image/png"))
        assert info.value.body["param"] == "mask" and words in info.value.body["message"]


def test_streaming_partials_then_completed_with_usage(start):
    emulator, server = start()
    events = list(sdk(server).images.generate(model="gpt-image-2.5-flare", prompt="a fox", stream=True,
                                              partial_images=2, quality="xhigh", size="1024x1024"))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    final = events[-1]
    assert final.usage.output_tokens == 2 * 7024 + 2 * 100
    assert len(emulator.counters.charges) == 1


def test_streamed_edit_events(start):
    _, server = start()
    events = list(sdk(server).images.edit(model="gpt-image-2", prompt="x", image=("a.png", png(), "image/png"),
                                          stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


def test_json_edit_with_a_data_url_and_a_fetched_url(start):
    emulator, server = start()
    data_url = "data:image/png;base64," + base64.b64encode(png()).decode()
    served = server.base_url + emulator.store_file(png(), "image/png")
    body = {"model": "gpt-image-1.5", "prompt": "turn it green", "images": [{"image_url": data_url},
                                                                           {"image_url": served}]}
    with httpx.Client() as http:
        ok = http.post(server.base_url + "/v1/images/edits", json=body, headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200, ok.text
        usage = ok.json()["usage"]
        assert usage["input_tokens_details"]["image_tokens"] == 2 * 194
        assert usage["output_tokens_details"]["text_tokens"] == 262  # 1.5 bills output text
        body["images"] = [{"image_url": server.base_url + "/files/missing"}]
        missing = http.post(server.base_url + "/v1/images/edits", json=body,
                            headers={"Authorization": f"Bearer {API_KEY}"})
    assert missing.status_code == 400 and missing.json() == {"error": {
        "message": "Error while downloading file. Upstream status code: 404.", "type": "invalid_request_error",
        "param": "url", "code": "invalid_value"}}


@pytest.mark.parametrize(("call", "cls", "code", "param"), [
    ({"key": "sk-wrong-key-123456"}, openai.AuthenticationError, "invalid_api_key", None),
    ({"model": "gpt-image-1"}, openai.NotFoundError, "model_not_found", None),
    ({"model": "gpt-image-9"}, openai.NotFoundError, "model_not_found", None),
    ({"extra_body": {"response_format": "b64_json"}}, openai.BadRequestError, "unknown_parameter",
     "response_format"),
    ({"size": "1000x1000"}, openai.BadRequestError, "invalid_value", "size"),
    ({"quality": "max"}, openai.BadRequestError, "invalid_value", "quality"),
    ({"prompt": "x [[MODERATION_BLOCKED:output]]"}, openai.BadRequestError, "moderation_blocked", None),
    ({"prompt": "x [[ERROR:quota]]"}, openai.RateLimitError, "insufficient_quota", None),
    ({"prompt": "x [[ERROR:verify]]"}, openai.PermissionDeniedError, None, None),
    ({"prompt": "x [[ERROR:overloaded]]"}, openai.InternalServerError, "server_is_overloaded", None),
])
def test_error_envelopes_as_the_sdk_reads_them(start, call, cls, code, param):
    emulator, server = start(today="2026-11-30")
    client = sdk(server, key=call.pop("key", API_KEY))
    with pytest.raises(cls) as info:
        client.images.generate(**{"model": "gpt-image-2", "prompt": "a fox", **call})
    assert info.value.code == code and info.value.param == param
    if code == "moderation_blocked":
        assert info.value.body["moderation_details"]["moderation_stage"] == "output"
    assert emulator.counters.charges == []


def test_the_sdk_retries_a_rate_limit_after_its_hint(start):
    emulator, server = start()
    from imagegen.testing import Fault, FaultPlan

    emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.01))
    client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url + "/v1", max_retries=1)
    raw = httpx.post(server.base_url + "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x"},
                     headers={"Authorization": f"Bearer {API_KEY}"})
    assert raw.status_code == 429 and raw.headers["retry-after-ms"] == "10"
    assert json.loads(raw.content)["error"]["code"] == "rate_limit_exceeded"
    emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.01))
    assert client.images.generate(model="gpt-image-2", prompt="a fox").data
    assert emulator.counters.faults == {"rate_limit": 2}


def test_401_without_a_key_carries_the_challenge(start):
    _, server = start()
    response = httpx.post(server.base_url + "/v1/images/generations", json={"model": "gpt-image-2", "prompt": "x"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="OpenAI API"'


def test_dall_e_answers_urls_before_its_shutdown(start):
    emulator, server = start(today="2026-05-01")
    answer = sdk(server).images.generate(model="dall-e-3", prompt="a cat", quality="hd", size="1024x1792")
    item = answer.data[0]
    assert item.url.startswith(server.base_url + "/files/") and item.revised_prompt and answer.usage is None
    assert httpx.get(item.url).headers["content-type"] == "image/png"
    assert emulator.counters.charges[0]["usd"] == 0.12


def test_models_list_and_retrieve_with_shutdown_dates(start):
    _, server = start(today="2026-11-30")
    client = sdk(server)
    listed = {m.id: m for m in client.models.list()}
    assert "gpt-image-2" in listed and "gpt-image-1" not in listed and "dall-e-3" not in listed
    assert str(listed["gpt-image-1.5"].shutdown_date) == "2026-12-01"  # the SDK's Model has the field
    assert client.models.retrieve("gpt-image-2.6-flare").shutdown_date is None
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("dall-e-2")
