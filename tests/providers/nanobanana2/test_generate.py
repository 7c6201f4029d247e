"""generate, edit, blend, submit/status/wait over loopback HTTP, in both answer modes."""

from __future__ import annotations

import pytest

from imagegen import Client, JobFailedError, JobNotFoundError, NoImageReturnedError
from imagegen.testing import LatencyModel

from .conftest import API_KEY, config


def test_generate_downloads_outputs_and_reads_sizes_from_bytes(client, emulator, mode):
    res = client.generate("a red fox", provider="nanobanana2", aspect_ratio="16:9", n=2)
    assert [img.mime_type for img in res.images] == ["image/png", "image/png"]
    # The emulator declares the native 1344x768 but serves 5 % of it: the bytes decide.
    assert {(img.width, img.height) for img in res.images} == {(67, 38)}
    assert res.metadata["outputs"][0]["width"] == 1344
    assert res.provider == "nanobanana2" and res.model == "nano-banana-2"
    assert res.job_id.startswith("nanobanana2:gen_")
    assert res.cost.estimated is False and res.cost.credits == 8 and res.cost.usd == pytest.approx(0.078)
    assert res.usage.credits == 8
    assert res.metadata["credits_used"] == 8 and "processing_time_ms" in res.metadata
    assert res.usage.extra["processing_time_ms"] == res.metadata["processing_time_ms"]
    calls = emulator.counters.calls
    assert calls["POST /api/v1/generate"] == 1
    assert calls.get("GET /api/v1/status/{job_id}", 0) == (2 if mode == "async" else 0)
    assert calls["GET /files/{file_id}"] == 2


def test_generate_sends_only_documented_fields(client, emulator):
    client.generate("a robot", provider="nanobanana2", aspect_ratio="1:1", seed=42, output_format="jpg",
                    images=["https://example.com/ref.png"],
                    options={"guidance_scale": 7.5, "style_reference_url": "https://example.com/style.png",
                             "style_strength": 0.8})
    assert emulator.requests[-1] == {"path": "/generate", "fields": {
        "prompt": "a robot", "num_outputs": 1, "aspect_ratio": "1:1", "output_format": "jpeg", "seed": 42,
        "guidance_scale": 7.5, "reference_images": ["https://example.com/ref.png"],
        "style_reference_url": "https://example.com/style.png", "style_strength": 0.8}}


def test_jpeg_output_format(client):
    res = client.generate("a lake", provider="nanobanana2", output_format="jpeg")
    assert res.images[0].mime_type == "image/jpeg"


def test_n_above_per_call_maximum_is_split(client, emulator):
    res = client.generate("six cats", provider="nanobanana2", n=6)
    assert len(res.images) == 6
    assert emulator.counters.calls["POST /api/v1/generate"] == 2
    assert sorted(r["fields"]["num_outputs"] for r in emulator.requests) == [2, 4]
    assert res.cost.credits == 24


def test_edit_uploads_the_image(client, emulator, png):
    res = client.edit("make the sky purple", images=[png], provider="nanobanana2", aspect_ratio="auto",
                      output_format="png")
    assert len(res.images) == 1 and res.cost.credits == 4
    fields = emulator.requests[-1]["fields"]
    assert emulator.requests[-1]["path"] == "/edit"
    assert fields["prompt"] == "make the sky purple" and fields["aspect_ratio"] == "auto"
    assert fields["image"]["content_type"] == "image/png" and fields["image"]["size"] == len(png)
    # 64x48 is 4:3: "auto" kept the input's shape (1184x864 native, scaled).
    assert res.metadata["outputs"][0]["width"] == 1184


def test_blend_sends_two_images_and_strength(client, emulator, png, jpeg):
    res = client.edit("blend them", images=[png, jpeg], provider="nanobanana2",
                      options={"blend": True, "blend_strength": 0.7})
    assert len(res.images) == 1
    last = emulator.requests[-1]
    assert last["path"] == "/blend"
    assert last["fields"]["blend_strength"] == "0.7"
    assert last["fields"]["image1"]["content_type"] == "image/png"
    assert last["fields"]["image2"]["content_type"] == "image/jpeg"
    assert set(last["fields"]) == {"prompt", "blend_strength", "image1", "image2"}


async def test_async_client_generate_and_edit(aclient, png):
    res = await aclient.generate("a fox", provider="nanobanana2")
    assert res.images[0].width == 51
    res = await aclient.edit("blend", images=[png, png], provider="nanobanana2", options={"blend": True})
    assert res.cost.credits == 4


def test_submit_status_wait(client, emulator, mode):
    job = client.submit("a castle", provider="nanobanana2")
    assert job.id.startswith("nanobanana2:gen_")
    if mode == "sync":
        assert job.status == "succeeded" and job.result is not None
    else:
        assert job.status == "queued" and job.metadata["vendor_status"] == "pending"
        job = client.status(job.id)
        assert job.status == "running" and job.metadata["vendor_status"] == "processing"
    res = client.wait(job.id, timeout=10)
    assert res.images and res.cost.credits == 4
    assert client.status(job.id).status == "succeeded"


def test_pending_answer_in_sync_mode_is_polled(client, emulator):
    res = client.generate("a pond emulate:pending", provider="nanobanana2")
    assert len(res.images) == 1
    assert emulator.counters.calls["GET /api/v1/status/{job_id}"] == 2


def test_failed_job_raises_job_failed_and_refunds(client, emulator):
    before = emulator.balance(API_KEY)
    with pytest.raises(JobFailedError, match="emulated") as info:
        client.generate("emulate:fail a tree", provider="nanobanana2")
    assert info.value.provider == "nanobanana2"
    assert emulator.balance(API_KEY) == before
    assert emulator.counters.total_credits == 0


def test_unknown_job_is_job_not_found(client):
    with pytest.raises(JobNotFoundError, match="gen_nope"):
        client.status("nanobanana2:gen_nope")


def test_time_driven_async_job_completes_without_poll_ticks(start):
    emulator, server = start(mode="async", ticks=None, latency=LatencyModel(base=0.05))
    with Client(config(server)) as client:
        res = client.generate("slow lighthouse", provider="nanobanana2")
    assert res.images and res.metadata["processing_time_ms"] >= 40


def test_completed_without_outputs_on_status_is_no_image(start):
    emulator, server = start(mode="async")
    with Client(config(server)) as client:
        job = client.submit("x", provider="nanobanana2")
        emulator.jobs[job.native_id].status = "completed"  # a completed job whose outputs are gone
        with pytest.raises(NoImageReturnedError, match="without outputs"):
            client.status(job.id)


def test_base_url_with_api_path_is_used_as_given(start):
    _, server = start()
    cfg = config(server)
    cfg["providers"]["nanobanana2"]["base_url"] = server.base_url + "/api/v1/"
    with Client(cfg) as client:
        assert client.provider("nanobanana2").base_url == server.base_url + "/api/v1"
        assert client.generate("x", provider="nanobanana2").images
