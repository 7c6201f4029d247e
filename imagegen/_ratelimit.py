"""Client-side rate limits per provider: requests per minute and concurrent calls.

Requests per minute use a sliding window. In one process by default; with
``[rate_limits] backend = "redis"`` the window lives in Redis (a Lua script keeps the
check-and-add atomic, timed by the Redis server's clock), so every process and
machine sharing that Redis stays under one account's limit together.

A 429 with a wait hint pauses the whole provider until the hint has passed, so the
calls queued behind it do not run into the same wall (no 429 storm).
Concurrency limits are per process: an ``asyncio.Semaphore`` per provider, always (a
provider's ``max_concurrency``, else ``DEFAULT_MAX_CONCURRENCY``). Calls beyond it wait here,
in asyncio, never inside the HTTP connection pool, which is sized to the same number: a pool
with requests queued inside it rescans its connections for every one of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

__all__ = ["LocalWindow", "RateLimitConfig", "RateLimiter", "RedisWindow"]

WINDOW_S = 60.0
#: Calls in flight per provider and process when its ``max_concurrency`` is not set.
DEFAULT_MAX_CONCURRENCY = 100


class RateLimitConfig(BaseModel):
    """``[rate_limits]``: where the request windows are kept."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    backend: Literal["local", "redis"] = "local"
    url: str | None = None
    key_prefix: str = "imagegen:rl:"


class Window(Protocol):
    async def try_acquire(self, key: str, limit: int) -> float:
        """Take a slot and return 0, or return the seconds until one frees up."""


class LocalWindow:
    """Sliding windows in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    async def try_acquire(self, key: str, limit: int) -> float:
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - WINDOW_S:
            events.popleft()
        if len(events) < limit:
            events.append(now)
            return 0.0
        return events[0] + WINDOW_S - now


_SLIDING_WINDOW_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


class RedisWindow:
    """Sliding windows in Redis, shared by every process that uses the same URL and prefix."""

    def __init__(self, url: str, *, prefix: str = "imagegen:rl:") -> None:
        import redis.asyncio as redis_asyncio  # the `redis` extra; imported only when configured

        self._redis = redis_asyncio.Redis.from_url(url)
        self._script = self._redis.register_script(_SLIDING_WINDOW_LUA)
        self._prefix = prefix

    async def try_acquire(self, key: str, limit: int) -> float:
        wait = await self._script(keys=[self._prefix + key], args=[WINDOW_S, limit, uuid.uuid4().hex])
        return float(wait)

    async def aclose(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """Per-provider request-rate and concurrency gates for one client."""

    def __init__(self, window: Window | None = None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.window = window or LocalWindow(clock)
        #: Deadlines and pauses are ``clock()`` values; both are injectable for tests.
        self._clock = clock
        self._sleep = sleep
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._paused_until: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, provider: str, *, requests_per_minute: float | None,
                   max_concurrency: int | None, deadline: float) -> AsyncIterator[None]:
        """Wait for a request slot (and a concurrency slot), then run the body."""
        semaphore = self._semaphore(provider, max_concurrency or DEFAULT_MAX_CONCURRENCY)
        try:  # a concurrency slot that frees only after the deadline is no slot: nothing is sent
            if semaphore.locked():
                await asyncio.wait_for(semaphore.acquire(), max(0.0, deadline - time.monotonic()))
            else:
                await semaphore.acquire()  # free now: no timer needed
        except TimeoutError:
            from ._errors import ProviderTimeoutError

            raise ProviderTimeoutError(
                f"{provider}: no concurrency slot (max_concurrency={max_concurrency or DEFAULT_MAX_CONCURRENCY}) "
                "freed up before the call's deadline; nothing was sent", provider=provider) from None
        try:
            await self._wait_for_rate(provider, requests_per_minute, deadline)
            yield
        finally:
            semaphore.release()

    def pause(self, provider: str, seconds: float) -> None:
        """The server said "wait": hold every call to ``provider`` for ``seconds``."""
        until = self._clock() + seconds
        self._paused_until[provider] = max(self._paused_until.get(provider, 0.0), until)

    def _semaphore(self, provider: str, limit: int) -> asyncio.Semaphore:
        if provider not in self._semaphores:
            self._semaphores[provider] = asyncio.Semaphore(limit)
        return self._semaphores[provider]

    async def _wait_for_rate(self, provider: str, per_minute: float | None, deadline: float) -> None:
        from ._errors import RateLimitError

        pause = self._paused_until.get(provider, 0.0) - self._clock()
        if pause > 0:
            if self._clock() + pause >= deadline:
                raise RateLimitError(f"{provider} asked to wait {pause:.1f}s, past the deadline; nothing was sent",
                                     provider=provider, retry_after=pause)
            await self._sleep(pause)
        if not per_minute:
            return
        while True:
            wait = await self.window.try_acquire(provider, int(per_minute))
            if wait <= 0:
                return
            if self._clock() + wait >= deadline:
                raise RateLimitError(
                    f"{provider} is at its configured limit of {per_minute:g} requests/minute and the next "
                    f"slot ({wait:.1f}s) is past the deadline; nothing was sent", provider=provider, retry_after=wait)
            await self._sleep(min(wait, 1.0) + 0.001)

    async def aclose(self) -> None:
        close = getattr(self.window, "aclose", None)
        if close is not None:
            await close()
