"""The emulator's Batch API and Files API, driven by the real google-genai client."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from google import genai
from google.genai import types

from imagegen.testing import FakeClock, Fault, FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator

from .conftest import API_KEY

MODEL = "gemini-3.1-flash-lite-image"




@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def started(clock: FakeClock) -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    emulator = create_emulator(latency=LatencyModel.none(), api_keys={API_KEY}, image_scale=0.05, clock=clock,
                               batch_turnaround_s=100.0)
    with serve(emulator) as server:
        yield emulator, server


@pytest.fixture
def sdk(started: tuple[GeminiEmulator, LoopbackServer]) -> genai.Client:
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=started[1].base_url,
                                                                         api_version="v1beta"))


def _request(prompt: str, key: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}], "metadata": {"key": key}}


def test_inline_batch_moves_through_its_states(sdk: genai.Client, started, clock: FakeClock) -> None:
    emulator, _ = started
    job = sdk.batches.create(model=MODEL, src=[_request("a fox", "fox"), _request("a hare", "hare")],
                             config={"display_name": "animals"})
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    assert sdk.batches.get(name=job.name).state == types.JobState.JOB_STATE_PENDING
    clock.advance(30)
    assert sdk.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    assert emulator.counters.total_usd == 0  # nothing answered, nothing billed
    clock.advance(100)
    done = sdk.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.end_time is not None
    answers = {r.metadata["key"]: r for r in done.dest.inlined_responses}
    assert set(answers) == {"fox", "hare"}
    assert all(r.response.candidates[0].content.parts for r in answers.values())
    # Billed once each, at the batch price (half the model's standard cost).
    assert len(emulator.counters.charges) == 2
    assert sdk.batches.get(name=job.name).state == types.JobState.JOB_STATE_SUCCEEDED
    assert len(emulator.counters.charges) == 2


def test_the_operation_carries_the_output_twice_with_string_counts(
        sdk: genai.Client, started, clock: FakeClock) -> None:
    _, server = started
    job = sdk.batches.create(model=MODEL, src=[_request("a fox", "fox")], config={"display_name": "x"})
    clock.advance(200)
    raw = httpx.get(f"{server.base_url}/v1beta/{job.name}", headers={"x-goog-api-key": API_KEY}).json()
    assert raw["done"] is True
    assert raw["metadata"]["batchStats"] == {"requestCount": "1", "successfulRequestCount": "1",
                                             "failedRequestCount": "0"}
    assert raw["response"]["inlinedResponses"] == raw["metadata"]["output"]["inlinedResponses"]


def test_file_input_gives_a_results_file(sdk: genai.Client, started, clock: FakeClock) -> None:
    lines = b"".join(json.dumps({"key": k, "request": {"contents": [{"parts": [{"text": k}]}]}}).encode() + b"\n"
                     for k in ("one", "two", "three"))
    uploaded = sdk.files.upload(file=io.BytesIO(lines), config={"mime_type": "application/jsonl"})
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(lines)
    job = sdk.batches.create(model=MODEL, src=uploaded.name, config={"display_name": "from a file"})
    clock.advance(200)
    done = sdk.batches.get(name=job.name)
    assert done.dest.file_name and done.dest.file_name.startswith("files/")
    results = [json.loads(line) for line in sdk.files.download(file=done.dest.file_name).splitlines()]
    assert [r["key"] for r in results] == ["one", "two", "three"]
    assert all("candidates" in r["response"] for r in results)


def test_members_fail_alone(sdk: genai.Client, started, clock: FakeClock) -> None:
    emulator, _ = started
    emulator.batches.member_faults = FaultPlan.script("ok", Fault("rate_limit"), "ok")
    src = [_request("a fox", "a"), _request("a hare", "b"), _request("[[IMAGE_SAFETY]] a wolf", "c"),
           _request("[[ERROR:internal]]", "d")]
    job = sdk.batches.create(model=MODEL, src=src, config={"display_name": "mixed"})
    clock.advance(200)
    answers = {r.metadata["key"]: r for r in sdk.batches.get(name=job.name).dest.inlined_responses}
    assert answers["a"].response is not None
    assert (answers["b"].error.code, answers["b"].error.message) == (
        8, "Resource has been exhausted (e.g. check quota).")
    assert answers["c"].response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert answers["d"].error.code == 13  # a gRPC code, not the HTTP 500
    assert len(emulator.counters.charges) == 1


@pytest.mark.parametrize(("marker", "state"), [("[[BATCH:EXPIRED]]", types.JobState.JOB_STATE_EXPIRED),
                                                ("[[BATCH:FAILED]]", types.JobState.JOB_STATE_FAILED)])
def test_scripted_fates(sdk: genai.Client, started, clock: FakeClock, marker: str, state: types.JobState) -> None:
    job = sdk.batches.create(model=MODEL, src=[_request("a fox", "a")], config={"display_name": f"x {marker}"})
    clock.advance(200)
    done = sdk.batches.get(name=job.name)
    assert done.state == state and done.dest is None
    assert started[0].counters.total_usd == 0


def test_cancel_is_at_once_and_slow_batches_wait(sdk: genai.Client, started, clock: FakeClock) -> None:
    job = sdk.batches.create(model=MODEL, src=[_request("a fox", "a")], config={"display_name": "[[BATCH:SLOW]]"})
    clock.advance(10_000)
    assert sdk.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    sdk.batches.cancel(name=job.name)
    assert sdk.batches.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    assert job.name in [b.name for b in sdk.batches.list()]
    sdk.batches.delete(name=job.name)
    assert job.name not in [b.name for b in sdk.batches.list()]


def test_the_get_pitfall(sdk: genai.Client, started, clock: FakeClock) -> None:
    emulator, _ = started
    emulator.batches.get_pitfall_bytes = 1_000  # every finished inline batch is "too large"
    job = sdk.batches.create(model=MODEL, src=[_request("a fox", "a")], config={"display_name": "big"})
    clock.advance(200)
    codes = set()
    for _ in range(2):
        with pytest.raises(genai.errors.ServerError) as caught:
            sdk.batches.get(name=job.name)
        codes.add(caught.value.code)
    assert codes == {503, 504}


def test_batch_routes_check_the_key(started) -> None:
    _, server = started
    answer = httpx.get(f"{server.base_url}/v1beta/batches")
    assert answer.status_code == 403 and answer.json()["error"]["status"] == "PERMISSION_DENIED"
    missing = httpx.get(f"{server.base_url}/v1beta/batches/nope", headers={"x-goog-api-key": API_KEY})
    assert missing.status_code == 404
