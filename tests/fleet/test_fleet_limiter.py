"""`FleetLimiter` against a real Redis: two limiters stand for two worker machines."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as redis_asyncio

from imagegen import RateLimitError
from imagegen.fleet import FleetLimiter


def _limiters(redis_url: str, prefix: str, lease_s: float) -> tuple[list[FleetLimiter], list[Any]]:
    clients = [redis_asyncio.Redis.from_url(redis_url) for _ in range(2)]
    return [FleetLimiter(c, prefix=prefix, window_s=60, guard_s=0, lease_s=lease_s, poll_s=0.01)
            for c in clients], clients


@pytest.fixture
async def pair(redis_url):
    """Two limiters sharing one prefix (two workers), each with its own connection. Their leases
    last far longer than any test: a lease that ran out because this loaded machine stood still
    would let a third call in and prove nothing about the cap."""
    limiters, clients = _limiters(redis_url, f"t{time.time_ns()}:", lease_s=60)
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


async def _lease_expiries(client: Any, key: str) -> tuple[float, list[float]]:
    """The Redis server's clock and the expiry of every lease under ``key``."""
    seconds, micros = await client.time()
    return seconds + micros / 1e6, [score for _, score in await client.zrange(key, 0, -1, withscores=True)]


async def test_a_dead_workers_slots_run_out(redis_url):
    """Worker A holds both slots, renews them one last time and dies: they come back once that
    renewal's lease is over, and not before.

    Read against the Redis server's clock (the one leases are written with), and A's leases are
    long until its last renewal, so a test process that stands still for a while on a loaded
    machine cannot turn the order around."""
    last_lease_s = 1.5
    prefix = f"t{time.time_ns()}:"
    (a, b), clients = _limiters(redis_url, prefix, lease_s=60)
    key = f"{prefix}lim:conc:gemini"
    try:
        for _ in range(2):
            await a._take_lease("gemini", 2, _deadline(5))
        with pytest.raises(RateLimitError, match="fleet-wide cap of 2 concurrent calls"):
            async with b.slot("gemini", requests_per_minute=None, max_concurrency=2, deadline=_deadline(0.1)):
                pass
        # A's last heartbeat (as its renewer sends it, with a short lease), then it dies: its
        # leases are never renewed or returned.
        held = list(a._held.pop("gemini"))
        if a._renewer is not None:
            a._renewer.cancel()
        renewed_at, _ = await _lease_expiries(clients[1], key)
        await a._renew(keys=[key], args=[last_lease_s, *held])
        _, expiries = await _lease_expiries(clients[1], key)
        assert len(expiries) == 2 and all(renewed_at < e <= renewed_at + last_lease_s + 0.05 for e in expiries)
        async with b.slot("gemini", requests_per_minute=None, max_concurrency=2, deadline=_deadline(30)):
            served_at, live = await _lease_expiries(clients[1], key)
        assert served_at >= min(expiries) and len(live) == 1  # A's ran out; the one held is B's own
    finally:
        for limiter, client in zip((a, b), clients, strict=True):
            await limiter.aclose()
            await client.aclose()


async def test_a_429_on_one_worker_pauses_the_provider_for_all(pair):
    a, b = pair
    a.pause("nb2", 60.0)
    await asyncio.gather(*a._tasks)
    with pytest.raises(RateLimitError, match="asked the fleet to wait") as caught:
        async with b.slot("nb2", requests_per_minute=None, max_concurrency=None, deadline=_deadline(5)):
            pass
    assert 30 < caught.value.retry_after <= 60  # what is left of the hint A was given
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
