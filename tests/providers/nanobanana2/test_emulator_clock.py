"""The nano-banana2 emulator's job lifecycle on a fake clock (no sleeping), and the numbers in
its answers as the developer guide prints them."""

from __future__ import annotations

import httpx
import pytest

from imagegen.testing import FakeClock, LatencyModel, serve
from imagegen_nanobanana2.emulator import create_emulator

AUTH = {"Authorization": "Bearer nb2-key"}
PROMPT = {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}


def _served(clock: FakeClock, **options: object):  # type: ignore[no-untyped-def]
    emulator = create_emulator(clock=clock, latency=LatencyModel(base=3.0, scale=1.0), image_scale=0.02, **options)
    return emulator, serve(emulator)


def test_sync_answer_reports_the_generation_time_without_waiting_for_it() -> None:
    clock = FakeClock()
    emulator, server = _served(clock)
    with server, httpx.Client(base_url=server.base_url + "/api/v1", headers=AUTH, timeout=5) as http:
        response = http.post("/generate", json=PROMPT)
    body = response.json()
    assert body["status"] == "completed" and body["processing_time_ms"] == 3000
    assert '"credits_used":4,' in response.text.replace(" ", "")  # an integer, as in the guide
    assert clock.slept == 3.0


@pytest.mark.parametrize(("ticks", "steps", "done_after_ms"), [(2, [0.7, 0.8], 1500), (None, [1.0, 2.5], 3500)])
def test_async_job_completes_on_a_poll_with_the_time_it_took(
        ticks: int | None, steps: list[float], done_after_ms: int) -> None:
    clock = FakeClock()
    emulator, server = _served(clock, mode="async", ticks=ticks)
    with server, httpx.Client(base_url=server.base_url + "/api/v1", headers=AUTH, timeout=5) as http:
        submitted = http.post("/generate", json=PROMPT)
        assert submitted.status_code == 202 and submitted.json()["status"] == "pending"
        seen = []
        for step in steps:
            clock.advance(step)
            seen.append(http.get(f"/status/{submitted.json()['id']}").json())
        balance = http.get("/credits/balance")
    assert [s["status"] for s in seen] == ["processing", "completed"]
    assert seen[-1]["processing_time_ms"] == done_after_ms and seen[-1]["credits_used"] == 4
    assert balance.json() == {"balance": 996} and '"balance":996}' in balance.text.replace(" ", "")


@pytest.mark.parametrize("prompt", ["[[FAIL]] a fox", "[[fail]] a fox", "emulate:fail"])
def test_a_failed_job_refunds_and_keeps_whole_numbers(prompt: str) -> None:
    clock = FakeClock()
    emulator, server = _served(clock, mode="async", ticks=1)
    with server, httpx.Client(base_url=server.base_url + "/api/v1", headers=AUTH, timeout=5) as http:
        job = http.post("/generate", json={**PROMPT, "prompt": prompt}).json()
        assert http.get(f"/status/{job['id']}").json()["status"] == "failed"
        assert http.get("/credits/balance").json() == {"balance": 1000}


def test_unknown_routes_and_bad_keys_answer_the_error_envelope() -> None:
    emulator, server = _served(FakeClock(), api_keys=["nb2-key"])
    with server, httpx.Client(base_url=server.base_url + "/api/v1", timeout=5) as http:
        missing = http.get("/no/such/route", headers=AUTH)
        refused = http.post("/generate", json=PROMPT, headers={"Authorization": "Bearer other"})
    assert missing.status_code == 404 and "error" in missing.json()
    assert refused.status_code == 401 and refused.json() == {"error": "Invalid or missing API key"}
