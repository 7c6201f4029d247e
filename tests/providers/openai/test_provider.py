"""The provider through the real Client (sync and async) against the emulator on loopback."""

from __future__ import annotations

import datetime as dt

import pytest

from imagegen import (
    AnswerLostError,
    AsyncClient,
    Client,
    ContentPolicyError,
    ImageRequest,
    InsufficientCreditsError,
    InvalidImageError,
    PartialImage,
    UnsupportedFeatureError,
)
from imagegen.testing import Fault, FaultPlan

from .conftest import config, mask, png


def test_generate_free_size_with_cost_from_usage(emulator_and_server):
    emulator, server = emulator_and_server
    with Client(config(server, organization="org-1", project="proj_1")) as client:
        result = client.generate("a lighthouse", provider="openai", size="2K", aspect_ratio="16:9",
                                 output_format="jpeg", options={"quality": "low", "output_compression": 80})
        estimate = client.estimate("a lighthouse", provider="openai", size="2K", aspect_ratio="16:9",
                                   options={"quality": "low"})
    image = result.images[0]
    assert (image.mime_type, image.width, image.height) == ("image/jpeg", 102, 58)  # 2048x1152 x image_scale
    sent = emulator.received[-1]
    assert (sent["size"], sent["quality"], sent["output_format"], sent["output_compression"]) == (
        "2048x1152", "low", "jpeg", 80)
    assert "response_format" not in sent
    assert sent["headers"] == {"openai-organization": "org-1", "openai-project": "proj_1"}
    charge = emulator.counters.charges[0]
    assert result.job_id == f"openai:{charge['ref']}" and result.cost.usd == charge["usd"]
    assert not result.cost.estimated and estimate.estimated and estimate.usd >= result.cost.usd
    assert result.metadata["size"] == "2048x1152" and result.metadata["quality"] == "low"


async def test_async_edit_with_a_mask_multipart(emulator_and_server):
    emulator, server = emulator_and_server
    async with AsyncClient(config(server)) as client:
        result = await client.edit("put a hat on the cat", images=[png(), png()], mask=mask(), provider="openai",
                                   options={"quality": "medium"})
    assert [f[0] for f in emulator.received[-1]["files"]] == ["image[]", "image[]", "mask"]
    assert result.usage.extra["input_image_tokens"] == 128 and result.cost.usd == emulator.counters.total_usd


def test_edit_from_urls_uses_the_json_form(emulator_and_server):
    emulator, server = emulator_and_server
    url = server.base_url + emulator.store_file(png(), "image/png")
    with Client(config(server)) as client:
        client.edit("make it blue", images=[url], provider="openai", options={"moderation": "low"})
    assert emulator.received[-1]["encoding"] == "json" and emulator.received[-1]["moderation"] == "low"


@pytest.mark.parametrize(("bad_mask", "words"), [(png(), "no alpha channel"), (mask(32, 32), "same size")])
def test_bad_masks_are_refused_before_any_call(emulator_and_server, bad_mask, words):
    emulator, server = emulator_and_server
    with Client(config(server)) as client, pytest.raises(InvalidImageError, match=words):
        client.edit("x", images=[png()], mask=bad_mask, provider="openai")
    assert emulator.counters.calls.get("total", 0) == 0


def test_masks_elsewhere_are_refused_naming_the_providers_that_take_them():
    with Client({"providers": {"gemini": {"api_key": "k"}}, "jobs": {"backend": "memory"}}) as client:
        with pytest.raises(UnsupportedFeatureError, match=r"masks are supported by openai \(gpt-image-2"):
            client.edit("x", images=[png()], mask=mask(), provider="gemini")


def test_a_retired_model_is_refused_before_any_call_naming_its_replacement(emulator_and_server):
    emulator, server = emulator_and_server
    with Client(config(server)) as client:
        with pytest.raises(UnsupportedFeatureError, match="shut down by OpenAI on 2026-10-23; use gpt-image-2.5"):
            client.generate("x", provider="openai/gpt-image-1")
        client.provider("openai").today = lambda: dt.date(2026, 11, 30)
        result = client.generate("x", provider="openai/gpt-image-1.5")
        assert result.warnings == ["openai/gpt-image-1.5 shuts down on 2026-12-01; move to gpt-image-2.6-sunburst"]
        client.provider("openai").today = lambda: dt.date(2026, 12, 1)
        with pytest.raises(UnsupportedFeatureError, match="gpt-image-2.6-sunburst"):
            client.generate("x", provider="openai/gpt-image-1.5")
    assert emulator.counters.calls["total"] == 1


def test_dall_e_url_answers_are_downloaded_through_the_safe_fetch(start):
    emulator, server = start(today="2026-05-01")
    with Client(config(server, model="dall-e-3")) as client:
        client.provider("openai").today = lambda: dt.date(2026, 5, 1)
        result = client.generate("a cat", provider="openai", options={"quality": "hd"}, size="1024x1792")
    assert result.images[0].url.startswith(server.base_url + "/files/")
    assert result.metadata["revised_prompts"][0].startswith("A detailed rendering") and result.text
    assert result.cost.usd == 0.12 and not result.cost.estimated


@pytest.mark.parametrize(("marker", "cls"), [("[[MODERATION_BLOCKED]]", ContentPolicyError),
                                             ("[[ERROR:quota]]", InsufficientCreditsError)])
def test_refusals_and_quota_are_typed_and_not_retried(emulator_and_server, marker, cls):
    emulator, server = emulator_and_server
    with Client(config(server)) as client, pytest.raises(cls):
        client.generate(f"a fox {marker}", provider="openai")
    assert emulator.counters.calls["POST /v1/images/generations"] == 1


def test_retry_after_ms_is_honoured_and_recorded(emulator_and_server):
    emulator, server = emulator_and_server
    emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.02), Fault("server_error"))
    with Client(config(server)) as client:
        result = client.generate("a fox", provider="openai")
    assert [a.error_type for a in result.attempts] == ["RateLimitError", "ProviderUnavailableError", None]
    assert result.attempts[0].retry_after == 0.02 and result.attempts[0].wait_s == 0.02
    assert len(emulator.counters.charges) == 1


def test_streaming_previews_then_a_result_that_is_cached_and_ledgered(start):
    emulator, server = start()
    cfg = {**config(server), "cache": {"backend": "memory"}}
    with Client(cfg) as client:
        items = list(client.stream("a fox", provider="openai", partial_images=2))
        again = list(client.stream("a fox", provider="openai", partial_images=2))
        job = client.status(items[-1].job_id)
    assert [type(i).__name__ for i in items] == ["PartialImage", "PartialImage", "ImageResult"]
    assert [i.index for i in items[:2]] == [0, 1] and isinstance(items[0], PartialImage)
    assert emulator.received[-1]["stream"] is True and emulator.received[-1]["partial_images"] == 2
    assert items[-1].usage.image_tokens == 1767 + 200  # medium 1024x1024 + 100 per preview
    assert [type(i).__name__ for i in again] == ["ImageResult"] and again[0].cached
    assert job.status == "succeeded" and len(emulator.counters.charges) == 1


async def test_async_stream_of_an_edit_with_a_mask(emulator_and_server):
    _, server = emulator_and_server
    async with AsyncClient(config(server)) as client:
        items = [item async for item in client.stream("a hat", images=[png()], mask=mask(), provider="openai",
                                                      partial_images=1)]
    assert [type(i).__name__ for i in items] == ["PartialImage", "ImageResult"]


def test_a_provider_that_cannot_stream_yields_the_result_alone(emulator_and_server):
    _, server = emulator_and_server
    with Client(config(server)) as client:
        items = list(client.stream("two foxes", provider="openai", n=2))
    assert [type(i).__name__ for i in items] == ["ImageResult"] and len(items[0].images) == 2
    assert "previews only for n=1" in items[0].warnings[0]


@pytest.mark.parametrize(("marker", "error_type", "charged"), [("[[STREAM_ERROR]]", "ProviderUnavailableError", 0),
                                                               ("[[STREAM_CUT]]", "AnswerLostError", 1)])
def test_a_stream_that_fails_after_its_previews(emulator_and_server, marker, error_type, charged):
    """The previews already delivered stay delivered. An error event is the vendor failing the call
    (not billed: retried); a stream cut after its 200 was billed, so it is recorded, not sent again."""
    emulator, server = emulator_and_server
    emulator.faults = FaultPlan()
    cfg = config(server)
    cfg["retry"] = {**cfg["retry"], "max_attempts": 2}
    with Client(cfg) as client:
        items: list[object] = []
        with pytest.raises(Exception) as info:
            items.extend(client.stream(f"a fox {marker}", provider="openai", partial_images=2))
    assert type(info.value).__name__ == error_type
    assert [type(i).__name__ for i in items][:2] == ["PartialImage", "PartialImage"]
    assert len(emulator.counters.charges) == charged
    assert emulator.counters.calls["POST /v1/images/generations"] == 2 - charged  # the billed one: once


def test_a_connection_cut_after_billing_is_paid_once_recorded_once_and_not_resent(tmp_path, emulator_and_server):
    """No idempotency key exists: an answer lost in transit after its 200 was billed (spec 2), and
    sending it again would be billed again. imagegen sends it once, records the charge (at the
    estimate: the usage was in the lost answer) and raises AnswerLostError with the job id the
    vendor billed it under."""
    emulator, server = emulator_and_server
    cfg = {**config(server), "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}}
    with Client(cfg) as client:
        with pytest.raises(AnswerLostError) as info:
            client.generate("a fox [[DROP_AFTER_BILLING]]", provider="openai")
        entries = client.ledger.entries()
        estimate = client.estimate(ImageRequest(prompt="a fox [[DROP_AFTER_BILLING]]", provider="openai"))
    charges, error = emulator.counters.charges, info.value
    assert len(charges) == 1 and emulator.counters.calls["POST /v1/images/generations"] == 1
    assert error.job_id == f"openai:{charges[0]['ref']}" and error.request_id == charges[0]["ref"]
    assert not error.retryable and error.job_id in error.message
    assert [(e.job_id, e.estimated, e.usd) for e in entries] == [(error.job_id, True, estimate.usd)]


def test_a_model_that_refuses_streaming_answers_in_one_piece(start):
    """gpt-image-2's model page says "Streaming: not supported" while the reference documents it."""
    emulator, server = start(no_streaming={"gpt-image-2"})
    with Client(config(server)) as client:
        items = list(client.stream("a fox", provider="openai", partial_images=2))
    assert [type(i).__name__ for i in items] == ["ImageResult"]
    assert "refused streaming" in items[0].warnings[0]
    assert emulator.counters.calls["POST /v1/images/generations"] == 2 and len(emulator.counters.charges) == 1
