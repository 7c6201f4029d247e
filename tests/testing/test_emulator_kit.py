"""The emulator kit's building blocks: Reject, ApiKeys, clocks, job timelines, JSON route errors,
and faults that strike mid-stream."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from imagegen.testing import (
    ApiKeys,
    Credential,
    FakeClock,
    FaultPlan,
    JobTimeline,
    LatencyModel,
    Reject,
    SystemClock,
    serve,
)

from .echo import EchoEmulator


def test_reject_is_rendered_in_the_emulators_envelope(echo: EchoEmulator, http: httpx.Client) -> None:
    response = http.post("/generate", json={"width": 9000})
    assert response.status_code == 400
    assert response.json() == {"error": {"code": 400, "message": "width is at most 4096"}}


def test_reject_keeps_code_fields_and_headers() -> None:
    reject = Reject(409, "stale", code="stale_write", headers={"X-A": "1"}, currentUpdatedAt="t1")
    assert (reject.status, reject.message, reject.code) == (409, "stale", "stale_write")
    assert reject.fields == {"currentUpdatedAt": "t1"} and reject.headers == {"X-A": "1"}
    with pytest.raises(ValueError):
        Reject(200, "not an error")


@pytest.mark.parametrize(("method", "path", "status"), [("GET", "/no/such/route", 404), ("GET", "/generate", 405)])
def test_unknown_routes_answer_json(http: httpx.Client, method: str, path: str, status: int) -> None:
    response = http.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert path in response.json()["error"]["message"]


def test_api_keys_name_each_problem() -> None:
    anyone = ApiKeys()
    assert anyone.verify(Credential("k")).ok and not anyone.restricted
    assert anyone.verify(Credential(None)).problem == "missing"
    listed = ApiKeys({"k1": {"credits": 5}, "old": {}}, expired=["old"], revoked=["k9"])
    assert listed.verify(Credential("k1")).ok and listed.record("k1") == {"credits": 5}
    assert listed.verify(Credential("k2")).problem == "unknown"
    assert listed.verify(Credential("old")).problem == "expired"
    assert "k1" in listed and "k9" not in listed
    assert ApiKeys(None, revoked=["k9"]).verify(Credential("k9")).problem == "unknown"
    assert ApiKeys.of("a, b").verify(Credential("b")).ok and ApiKeys.of(["a"]).restricted
    with pytest.raises(TypeError):
        ApiKeys("a-single-key")  # type: ignore[arg-type]


def test_bearer_keys_are_checked_over_http() -> None:
    emulator = EchoEmulator(api_keys=["good"], clock=FakeClock())
    with serve(emulator) as server, httpx.Client(base_url=server.base_url) as http:
        answers = {header: http.post("/jobs", headers={"Authorization": header} if header else {})
                   for header in ("", "Basic x", "Bearer bad", "Bearer good")}
    assert {h: r.status_code for h, r in answers.items()} == {
        "": 401, "Basic x": 401, "Bearer bad": 401, "Bearer good": 202}
    assert answers[""].json()["error"]["message"] == "API key missing"
    assert answers["Basic x"].json()["error"]["message"] == "API key malformed"
    assert answers["Bearer bad"].json()["error"]["message"] == "API key unknown"


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(start=100.0)
    assert clock.time() == 100.0
    assert clock.advance(2.5) == 102.5 and clock.set(110.0) == 110.0
    with pytest.raises(ValueError):
        clock.advance(-1)
    asyncio.run(clock.sleep(30))  # autojump: returns at once, later by 30 s
    assert clock.time() == 140.0 and clock.slept == 30


def test_fake_clock_sleep_until_waits_for_an_advance_from_another_thread() -> None:
    clock = FakeClock(start=0.0)
    woke: list[float] = []

    async def timer() -> None:
        await clock.sleep_until(5.0)
        woke.append(clock.time())

    async def main() -> None:
        task = asyncio.create_task(timer())
        await asyncio.sleep(0)
        thread = threading.Thread(target=clock.advance, args=(4.0,))
        thread.start()
        thread.join()
        await asyncio.sleep(0)
        assert not woke  # 4 s is not enough
        clock.advance(1.0)
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert woke == [5.0]


async def test_system_clock_is_the_real_one() -> None:
    clock = SystemClock()
    before = clock.time()
    await clock.sleep(0)
    await clock.sleep_until(before)  # in the past: returns at once
    assert clock.time() >= before


def test_job_timeline_runs_on_the_clock() -> None:
    clock = FakeClock(start=0.0)
    job = JobTimeline(clock, queued_s=2.0, running_s=10.0)
    assert (job.phase(), job.progress()) == ("queued", 0.0)
    clock.advance(7.0)
    assert (job.phase(), job.progress()) == ("running", 0.5)
    clock.advance(100.0)
    assert job.done and job.finished_at == 12.0 and job.elapsed_s() == 12.0  # it ended when due


def test_job_timeline_done_after_polls_and_finish() -> None:
    clock = FakeClock(start=0.0)
    job = JobTimeline(clock, running_s=60.0, done_after_polls=2)
    clock.advance(1.5)
    assert job.poll() == "running"
    clock.advance(0.5)
    assert job.poll() == "done" and job.elapsed_s() == 2.0
    other = JobTimeline(clock, running_s=60.0)
    other.finish()
    assert other.done and other.elapsed_s() == 0.0
    with pytest.raises(ValueError):
        JobTimeline(clock, done_after_polls=0)


def test_a_job_lifecycle_over_http_without_sleeping() -> None:
    clock = FakeClock()
    emulator = EchoEmulator(clock=clock)
    auth = {"Authorization": "Bearer k"}
    with serve(emulator) as server, httpx.Client(base_url=server.base_url, headers=auth) as http:
        job_id = http.post("/jobs").json()["id"]
        seen = [http.get(f"/jobs/{job_id}").json()["status"]]
        for step in (1.0, 5.0, 5.0):
            clock.advance(step)
            seen.append(http.get(f"/jobs/{job_id}").json()["status"])
        assert http.get(f"/jobs/{job_id}").json()["elapsed_s"] == 11.0
    assert seen == ["queued", "running", "running", "done"]


def test_latency_on_a_fake_clock_takes_no_real_time() -> None:
    clock = FakeClock(start=0.0)
    emulator = EchoEmulator(clock=clock, latency=LatencyModel(base=30.0, scale=1.0))
    with serve(emulator) as server, httpx.Client(base_url=server.base_url, timeout=5) as http:
        assert http.post("/generate", json={"width": 8, "height": 8}).status_code == 200
    assert clock.time() == 30.0 and clock.slept == 30.0


def test_drop_after_the_first_chunk_of_a_stream(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.parse("script:drop:after_chunks=1")
    received: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError), http.stream("GET", "/stream") as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received.append(chunk)
    assert b"".join(received) == b"data: 0\n\n"
    assert http.get("/stream").text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"  # the script is spent


def test_stall_after_a_chunk_then_cut(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.parse("script:timeout:after_chunks=2:delay=0.05")
    with pytest.raises(httpx.RemoteProtocolError), http.stream("GET", "/stream") as response:
        body = b"".join(response.iter_bytes())
    assert echo.counters.faults == {"timeout": 1} and "body" not in locals()


def test_mid_stream_fault_on_a_whole_answer_is_the_plain_fault(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.parse("script:drop:after_chunks=1")
    with pytest.raises(httpx.HTTPError):
        http.post("/generate", json={"width": 8, "height": 8}).json()
    assert echo.counters.total_credits == 1  # the handler ran: the answer was lost on the way


def test_after_chunks_is_only_for_drop_and_timeout() -> None:
    with pytest.raises(ValueError, match="after_chunks"):
        FaultPlan.parse("script:rate_limit:after_chunks=1")
