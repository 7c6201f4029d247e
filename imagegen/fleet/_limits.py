"""Limits that hold for a whole fleet: requests per minute, concurrent calls and 429 pauses.

A worker's client gets a `FleetLimiter` in place of its per-process `RateLimiter`; the
pipeline calls it exactly as before (``slot``, ``pause``). Everything lives in the fleet's
Redis and is checked by Lua scripts timed by the Redis server's clock:

- **requests per minute**: a sliding window per provider. The vendor counts a request when
  it *arrives*, which may be well after the fleet counted it (a worker's first call imports
  an SDK and opens a connection first: a second or more). So a slot counts from when it was
  taken, and once the call is over it counts again from then (from at most ``send_bound_s``
  after it was taken, so a long polled job does not hold its slot for its whole run), plus
  ``guard_s`` for the way to the vendor. Without that, two requests a window apart by the
  fleet's clock arrive less than a window apart and the vendor refuses the second;
- **concurrency**: a sorted set of leases per provider (member = lease id, score = expiry).
  A worker renews its leases while it holds them; a killed worker's leases expire after
  ``lease_s``, so its slots come back without anyone having to notice it died;
- **pauses**: a 429 with a wait hint sets ``pause:<provider>`` for that long; every worker
  checks it before each call, so the whole fleet stops hitting that provider, not only the
  worker that was told.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from redis.exceptions import RedisError

from .._errors import RateLimitError
from .._ratelimit import RateLimiter
from ._lease import check_fence

__all__ = ["FleetLimiter"]

log = logging.getLogger("imagegen.fleet")

_GATE_LUA = """
-- KEYS: pause, window. ARGV: window seconds, limit (0: none), member
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then return {'pause', tostring(paused / 1000)} end
local limit = tonumber(ARGV[2])
if limit <= 0 then return {'ok', '0'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) < limit then
  redis.call('ZADD', KEYS[2], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], math.ceil(window * 1000))
  return {'ok', tostring(now)}
end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {'window', tostring(tonumber(oldest[2]) + window - now)}
"""

_SENT_LUA = """
-- KEYS: window. ARGV: member, taken at, send bound seconds, window seconds
-- The call is over, so its request reached the vendor by now (or within the bound after its
-- slot was taken): count the slot from then, never from earlier than it counted already.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local score = math.min(now, tonumber(ARGV[2]) + tonumber(ARGV[3]))
redis.call('ZADD', KEYS[1], 'GT', score, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[4]) + tonumber(ARGV[3])) * 1000))
return 1
"""

_LEASE_LUA = """
-- KEYS: leases. ARGV: limit, lease id, lease seconds
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
  return 1
end
return 0
"""

_RENEW_LUA = """
-- KEYS: leases. ARGV: lease seconds, lease ids...
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
return 1
"""


@contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        log.warning("fleet limits: could not %s: %s", what, exc)


class FleetLimiter(RateLimiter):
    """Per-provider limits shared by every worker using the same Redis and prefix."""

    def __init__(self, redis: Any, *, prefix: str = "imagegen:fleet:", window_s: float = 60.0,
                 guard_s: float = 0.5, send_bound_s: float = 10.0, lease_s: float = 15.0,
                 poll_s: float = 0.05) -> None:
        super().__init__()
        self._redis = redis
        self._prefix = f"{prefix}lim:"
        self.window_s, self.guard_s, self.lease_s, self._poll_s = window_s, guard_s, lease_s, poll_s
        self.send_bound_s = send_bound_s
        self._gate = redis.register_script(_GATE_LUA)
        self._sent = redis.register_script(_SENT_LUA)
        self._lease = redis.register_script(_LEASE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)
        self._held: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def slot(self, provider: str, *, requests_per_minute: float | None,
                   max_concurrency: int | None, deadline: float) -> AsyncIterator[None]:
        lease = await self._take_lease(provider, max_concurrency, deadline) if max_concurrency else None
        try:
            taken = await self._pass_gate(provider, requests_per_minute, deadline)
            # The last moment before the request goes out: a worker that lost its prompt (or the
            # prompt's claim) while it waited or stood still stops here, having sent nothing.
            await check_fence()
            try:
                yield
            finally:
                if taken is not None:
                    # After the call: a failure here must not cost its (perhaps paid) result.
                    with _logged("recount a request slot"):
                        await self._sent(keys=[f"{self._prefix}rate:{provider}"],
                                         args=[*taken, self.send_bound_s, self.window_s + self.guard_s])
        finally:
            if lease is not None:
                with _logged("return a concurrency lease (it runs out by itself)"):
                    await self._give_back(provider, lease)

    def pause(self, provider: str, seconds: float) -> None:
        """Hold ``provider`` for the whole fleet (the pipeline calls this synchronously)."""
        super().pause(provider, seconds)
        task = asyncio.get_running_loop().create_task(self._redis.set(
            f"{self._prefix}pause:{provider}", "1", px=max(1, int(seconds * 1000))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pass_gate(self, provider: str, per_minute: float | None, deadline: float) -> tuple[str, str] | None:
        """Wait out a fleet-wide pause and take a rate slot; the slot (member, when) if one was needed."""
        member = uuid.uuid4().hex
        while True:
            kind, value = await self._gate(
                keys=[f"{self._prefix}pause:{provider}", f"{self._prefix}rate:{provider}"],
                args=[self.window_s + self.guard_s, int(per_minute or 0), member])
            if kind == b"ok":
                return (member, value.decode()) if per_minute else None
            wait = float(value)
            if time.monotonic() + wait >= deadline:
                why = ("asked the fleet to wait" if kind == b"pause" else
                       f"is at its fleet-wide limit of {per_minute:g} requests per {self.window_s:g}s")
                raise RateLimitError(f"{provider} {why}; the next slot ({wait:.1f}s) is past the deadline",
                                     provider=provider, retry_after=wait)
            await asyncio.sleep(min(wait, 1.0) + 0.001)

    async def _take_lease(self, provider: str, limit: int, deadline: float) -> str:
        lease = uuid.uuid4().hex
        key = f"{self._prefix}conc:{provider}"
        while not await self._lease(keys=[key], args=[limit, lease, self.lease_s]):
            if time.monotonic() + self._poll_s >= deadline:
                raise RateLimitError(f"{provider} is at its fleet-wide cap of {limit} concurrent calls "
                                     "until past the deadline", provider=provider, retry_after=self._poll_s)
            await asyncio.sleep(self._poll_s)
        self._held.setdefault(provider, set()).add(lease)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._keep_leases())
        return lease

    async def _give_back(self, provider: str, lease: str) -> None:
        self._held.get(provider, set()).discard(lease)
        await self._redis.zrem(f"{self._prefix}conc:{provider}", lease)

    async def _keep_leases(self) -> None:
        """Renew held leases every third of their life; a dead worker's simply run out."""
        while any(self._held.values()):
            await asyncio.sleep(self.lease_s / 3)
            for provider, leases in list(self._held.items()):
                if leases:
                    try:
                        await self._renew(keys=[f"{self._prefix}conc:{provider}"], args=[self.lease_s, *leases])
                    except RedisError:  # Redis away for a moment: the next round renews
                        pass

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
