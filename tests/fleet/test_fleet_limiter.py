"""`FleetLimiter` against a real Redis: two limiters stand for two worker machines."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis_asyncio

from imagegen import RateLimitError
from imagegen.fleet import FleetLimiter


@pytest.fixture
async def pair(redis_url):
    """Two limiters sharing one prefix (two workers), each with its own connection."""
    prefix = f"t{time.time_ns()}:"
    clients = [redis_asyncio.Redis.from_url(redis_url) for _ in range(2)]
    limiters = [FleetLimiter(c, prefix=prefix, window_s=60, guard_s=0, lease_s=0.6, poll_s=0.01) for c in clients]
    yield limiters
    for limiter, client in zip(limiters, clients, strict=True):
        await limiter.aclose()
        await client.aclose()


def _deadline(seconds: float) -> float:
    return time.monotonic() + seconds


async def test_a_concurrency_cap_holds_across_workers(pair):
    a, b = pair
    running = peak = 0
    release = asyncio.Event()

    async def call(limiter: FleetLimiter) -> None:
        nonlocal running, peak
        async with limiter.slot("wireflow", requests_per_minute=None, max_concurrency=2, deadline=_deadline(10)):
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

    tasks = [asyncio.create_task(call(lim)) for lim in (a, b, a, b)]
    while running < 2:  # noqa: ASYNC110 - the tasks poll Redis; this waits for them
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the other two are polling for a slot meanwhile
    assert running == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_a_dead_workers_slots_run_out(pair):
    a, b = pair
    # Worker A takes both slots and dies holding them: its leases are never renewed or returned.
    for _ in range(2):
        await a._take_lease("gemini", 2, _deadline(1))
    a._held.clear()
    if a._renewer is not None:
        a._renewer.cancel()
    with pytest.raises(RateLimitError, match="fleet-wide cap of 2 concurrent calls"):
        async with b.slot("gemini", requests_per_minute=None, max_concurrency=2, deadline=_deadline(0.1)):
            pass
    async with b.slot("gemini", requests_per_minute=None, max_concurrency=2, deadline=_deadline(5)):
        pass  # the leases ran out after lease_s


async def test_a_429_on_one_worker_pauses_the_provider_for_all(pair):
    a, b = pair
    a.pause("nb2", 30.0)
    await asyncio.gather(*a._tasks)
    with pytest.raises(RateLimitError, match="asked the fleet to wait") as caught:
        async with b.slot("nb2", requests_per_minute=None, max_concurrency=None, deadline=_deadline(5)):
            pass
    assert 25 < caught.value.retry_after <= 30
    async with b.slot("gemini", requests_per_minute=None, max_concurrency=None, deadline=_deadline(5)):
        pass  # other providers are not held


async def test_the_request_window_is_shared(pair):
    a, b = pair
    for limiter in (a, b, a):
        async with limiter.slot("gemini", requests_per_minute=3, max_concurrency=None, deadline=_deadline(5)):
            pass
    with pytest.raises(RateLimitError, match="fleet-wide limit of 3 requests per 60s"):
        async with b.slot("gemini", requests_per_minute=3, max_concurrency=None, deadline=_deadline(5)):
            pass
