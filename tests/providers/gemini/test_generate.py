"""Text to image through the public Client, against the loopback emulator."""

from __future__ import annotations

import base64
import time

import pytest

from imagegen import (
    AsyncClient,
    Client,
    InvalidRequestError,
    JobNotFoundError,
    UnsupportedFeatureError,
)
from imagegen_gemini import GeminiProvider
from imagegen_gemini._catalog import expected_pixels

from .conftest import config

MODELS = {spec.id: spec for spec in GeminiProvider.models()}

SHAPES = [
    # model, ratio, size, mime
    ("gemini-2.5-flash-image", "21:9", None, "image/png"),
    ("gemini-3-pro-image", "3:4", "2K", "image/jpeg"),
    ("gemini-3-pro-image-preview", "1:1", "1K", "image/jpeg"),
    ("gemini-3.1-flash-image", "8:1", "512", "image/jpeg"),
    ("gemini-3.1-flash-lite-image", "4:5", "1K", "image/jpeg"),
    ("gemini-nano-banana-2.1", "16:9", "1K", "image/jpeg"),
]


@pytest.mark.parametrize(("model", "ratio", "size", "mime"), SHAPES)
def test_generate_each_model(client: Client, emulator, model: str, ratio: str, size: str | None,
                             mime: str) -> None:
    res = client.generate("a red fox in the snow", provider="gemini", model=model, aspect_ratio=ratio, size=size)
    spec = next(s for s in MODELS.values() if model in s.names)
    [image] = res.images
    assert (image.width, image.height) == expected_pixels(spec, ratio, size)
    assert image.mime_type == mime
    assert res.provider == "gemini" and res.model == spec.id
    assert res.job_id and res.job_id.startswith("gemini:")
    assert res.cost.estimated is False and res.cost.usd and res.cost.usd > 0
    assert set(res.cost.breakdown) == {"input", "image_output", "text_output"}
    assert res.usage.image_tokens == spec.extra["tokens_per_image"][size or "*"]
    assert emulator.counters.calls["total"] == 1
    assert emulator.counters.total_usd == pytest.approx(res.cost.usd)


def test_no_ratio_takes_the_models_choice(client: Client) -> None:
    res = client.generate("a landscape", provider="gemini", model="gemini-3-pro-image")
    assert (res.images[0].width, res.images[0].height) == (1408, 768)


def test_4k_response(client: Client) -> None:
    res = client.generate("a city at night", provider="gemini", model="gemini-3-pro-image", size="4K",
                          aspect_ratio="16:9")
    image = res.images[0]
    assert (image.width, image.height) == (5504, 3072)
    assert image.data[:2] == b"\xff\xd8"  # real JPEG bytes
    assert res.usage.image_tokens == 2000
    assert res.cost.breakdown["image_output"] == pytest.approx(0.24)


def test_two_images_and_interleaved_text(client: Client) -> None:
    res = client.generate("a comic strip [[TWO_IMAGES]]", provider="gemini", model="gemini-3-pro-image",
                          aspect_ratio="1:1")
    assert len(res.images) == 2 and res.images[0].data != res.images[1].data
    assert len(res.text) == 2 and res.text[1] == "And a second take on the same idea."
    assert res.usage.image_tokens == 2 * 1120
    # 3.x: a signature on the first part and on each image part, kept for the next turn.
    signatures = res.metadata["thought_signatures"]
    assert len(signatures) == 3 and all(base64.b64decode(s) for s in signatures)


def test_usage_and_actual_cost_follow_usage_metadata(client: Client) -> None:
    res = client.generate("a lighthouse", provider="gemini", model="gemini-3-pro-image", aspect_ratio="1:1")
    usage = res.usage
    assert usage.thoughts_tokens == 176 and usage.image_tokens == 1120
    assert usage.output_tokens == usage.image_tokens + usage.text_tokens + usage.thoughts_tokens
    assert usage.extra["total_tokens"] == usage.input_tokens + usage.output_tokens
    rates = MODELS["gemini-3-pro-image"].price.rates
    assert res.cost.breakdown["image_output"] == pytest.approx(1120 * rates["image_output_per_mtok"] / 1e6)
    assert res.cost.breakdown["text_output"] == pytest.approx(
        (usage.text_tokens + usage.thoughts_tokens) * rates["text_output_per_mtok"] / 1e6)
    assert res.cost.breakdown["input"] == pytest.approx(usage.input_tokens * rates["input_per_mtok"] / 1e6)


def test_estimate_comes_from_the_token_table(client: Client, emulator) -> None:
    cost = client.estimate("a lighthouse", provider="gemini", model="gemini-3-pro-image", size="4K", n=2)
    assert cost.estimated is True
    assert cost.breakdown["image_output"] == pytest.approx(2 * 0.24)
    assert cost.usd == pytest.approx(sum(cost.breakdown.values()))
    assert emulator.counters.calls.get("total", 0) == 0


def test_n_is_split_into_one_call_per_image(client: Client, emulator) -> None:
    res = client.generate("three foxes", provider="gemini", model="gemini-3.1-flash-lite-image", n=3)
    assert len(res.images) == 3 and emulator.counters.calls["total"] == 3
    assert len(set(res.metadata["job_ids"])) == 3


def test_thought_parts_are_not_results(client: Client) -> None:
    res = client.generate("a bridge", provider="gemini", model="gemini-3-pro-image", aspect_ratio="1:1",
                          options={"include_thoughts": True})
    [image] = res.images  # the interim thought image is dropped
    assert (image.width, image.height) == (1024, 1024)
    assert res.metadata["thought_parts"] == 2
    assert all("Composing" not in t for t in res.text)


def test_image_only_modality(client: Client) -> None:
    res = client.generate("a bridge", provider="gemini", model="gemini-3-pro-image",
                          options={"response_modalities": ["IMAGE"]})
    assert res.text == [] and len(res.images) == 1


@pytest.mark.parametrize(("kwargs", "error", "fragment"), [
    ({"model": "gemini-2.5-flash-image", "size": "2K"}, UnsupportedFeatureError, "single size"),
    ({"model": "gemini-3-pro-image", "aspect_ratio": "1:8"}, UnsupportedFeatureError, "use one of 1:1"),
    ({"model": "gemini-3.1-flash-lite-image", "size": "2K"}, UnsupportedFeatureError, "use one of 1K"),
    ({"model": "gemini-3-pro-image", "size": "1k"}, UnsupportedFeatureError, "use one of 1K, 2K, 4K"),
    ({"model": "gemini-3-pro-image", "output_format": "png"}, UnsupportedFeatureError, "use one of jpeg"),
    ({"options": {"response_modalities": ["TEXT"]}}, InvalidRequestError, "must list \"IMAGE\""),
    ({"options": {"include_thoughts": "yes"}}, InvalidRequestError, "true or false"),
    ({"options": {"thinking_level": "max"}}, InvalidRequestError, "minimal, low, medium, high"),
    ({"model": "gemini-3-pro-image", "options": {"thinking_level": "low"}}, UnsupportedFeatureError,
     "not understood"),
    ({"webhook_url": "https://example.com/hook"}, UnsupportedFeatureError, "webhooks"),
])
def test_refused_before_any_call(client: Client, emulator, kwargs, error, fragment) -> None:
    with pytest.raises(error) as info:
        client.generate("a fox", provider="gemini", **kwargs)
    assert fragment in str(info.value)
    assert emulator.counters.calls.get("total", 0) == 0


def test_seed_is_sent_with_a_warning(client: Client) -> None:
    res = client.generate("a fox", provider="gemini", seed=7)
    assert any("reproducible" in w for w in res.warnings)


def test_deprecated_model_warns_and_still_works_where_served(client: Client) -> None:
    res = client.generate("a fox", provider="gemini", model="gemini-3.1-flash-image-preview")
    assert any("gemini-nano-banana-2.1" in w for w in res.warnings)


def test_submit_returns_a_finished_job_that_status_reports(client: Client, emulator) -> None:
    job = client.submit("a fox", provider="gemini")
    assert job.status == "succeeded" and job.result is not None and job.id.startswith("gemini:")
    assert client.status(job.id).status == "succeeded"
    assert client.wait(job.id).images[0].data == job.result.images[0].data
    assert emulator.counters.calls["total"] == 1  # status and wait came from the job store


def test_status_from_another_process_via_the_sqlite_store(server, tmp_path) -> None:
    jobs = {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")}
    with Client({**config(server.base_url), "jobs": jobs}) as first:
        result = first.generate("a fox", provider="gemini")
    with Client({**config(server.base_url), "jobs": jobs}) as second:
        job = second.status(result.job_id)
    assert job.status == "succeeded" and job.result.images[0].sha256 == result.images[0].sha256


def test_status_of_an_unknown_job_says_why(client: Client) -> None:
    with pytest.raises(JobNotFoundError, match="answers synchronously"):
        client.status("gemini:never-seen")


async def test_async_client(aclient: AsyncClient) -> None:
    start = time.monotonic()
    res = await aclient.generate("a fox", provider="gemini", model="gemini-3-pro-image", aspect_ratio="9:16")
    assert (res.images[0].width, res.images[0].height) == (768, 1376)
    assert res.latency_s <= time.monotonic() - start + 0.01
