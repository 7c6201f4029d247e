"""A small client-side rate limiter that also follows Wireflow's rate-limit headers.

Wireflow limits requests per minute by plan and executions to 10 per minute on every plan
(spec §9), and reports its window on every response: ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (a Unix time). One `WindowLimiter` per kind of call combines:

- the configured limit, as a sliding log of send times over ``window_s``;
- the server's budget: once it says nothing is left, wait until its reset time; between
  responses each send spends one unit, so concurrent callers do not all rush the last slot;
- a hold after a 429, until the server's wait hint has passed.

Acquisitions are served one at a time, in order, so a batch queues instead of storming.
(A cross-provider limiter belongs to the core; this one is private to the provider.)
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping

__all__ = ["PLAN_LIMITS", "RateLimitTooLong", "WindowLimiter"]

#: Plan -> (requests per minute, executions per minute), from P8 and seeds 000/001/002.
#: P11's "Team" plan (C12) publishes no numbers; it is given Pro's. Executions are capped
#: at 10 per minute on every plan.
PLAN_LIMITS: dict[str, tuple[float, float]] = {
    "free": (10, 10),
    "starter": (20, 10),
    "pro": (60, 10),
    "team": (60, 10),
    "enterprise": (200, 10),
}
EXECUTIONS_PER_MINUTE = 10.0


class RateLimitTooLong(Exception):
    """The next slot is further away than the caller is willing to wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"next slot in {wait:.1f} s")
        self.wait = wait


class WindowLimiter:
    """At most ``limit`` sends per ``window_s`` seconds, and never past the server's budget."""

    def __init__(self, limit: float | None, *, window_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._remaining: float | None = None
        self._reset_at: float | None = None
        self._hold_until = 0.0
        self._lock: asyncio.Lock | None = None
        #: Total seconds spent waiting, for tests and benchmarks.
        self.waited_s = 0.0

    def next_slot(self, now: float | None = None) -> float:
        """Seconds until a send is allowed (0 when it is allowed now)."""
        now = self._clock() if now is None else now
        waits = [self._hold_until - now]
        if self._remaining is not None and self._reset_at is not None:
            if now >= self._reset_at:
                self._remaining = self._reset_at = None
            elif self._remaining <= 0:
                waits.append(self._reset_at - now)
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()
        if self.limit is not None and len(self._sent) >= self.limit:
            waits.append(self._sent[0] + self.window_s - now)
        return max(0.0, *waits)

    async def acquire(self, *, max_wait: float) -> float:
        """Wait for a slot and take it; raise `RateLimitTooLong` instead of waiting past ``max_wait``."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        waited = 0.0
        async with self._lock:
            while (wait := self.next_slot()) > 0:
                if waited + wait > max_wait:
                    raise RateLimitTooLong(wait)
                # Small margin: the server's clock ticks in whole seconds.
                await asyncio.sleep(wait + 0.01)
                waited += wait
            self._sent.append(self._clock())
            if self._remaining is not None:
                self._remaining -= 1
        self.waited_s += waited
        return waited

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the server's ``X-RateLimit-Remaining``/``-Reset`` as the current budget."""
        remaining = _float(headers.get("x-ratelimit-remaining"))
        reset = _float(headers.get("x-ratelimit-reset"))
        if remaining is None:
            return
        now = self._clock()
        reset_at = None
        if reset is not None:
            # An epoch (documented) or, defensively, seconds from now.
            reset_at = reset if reset > 1_000_000_000 else now + reset
        if reset_at is not None and self._reset_at is not None and abs(reset_at - self._reset_at) < 0.5:
            # Same window: answers arrive out of order; the smallest count is the freshest.
            self._remaining = min(self._remaining if self._remaining is not None else remaining, remaining)
        else:
            self._remaining, self._reset_at = remaining, reset_at

    def hold(self, seconds: float | None) -> None:
        """After a 429: send nothing for ``seconds`` (1 s when the server gave no hint)."""
        wait = 1.0 if seconds is None else max(0.0, seconds)
        self._hold_until = max(self._hold_until, self._clock() + wait)


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None
