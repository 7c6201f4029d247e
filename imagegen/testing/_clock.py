"""Clocks for emulators: the real one, and a fake one tests move by hand.

Everything an emulator does with time goes through its `clock`: job lifecycles, rate-limit
windows, idempotency lifetimes, timestamps and simulated generation latency. Give an emulator a
`FakeClock` and a test drives a job from queued to done with ``clock.advance(30)`` instead of
sleeping 30 seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["Clock", "FakeClock", "SystemClock"]

#: 2026-01-01T00:00:00Z: a fixed, plausible start so fake timestamps read like real ones.
FAKE_EPOCH = 1_767_225_600.0


@runtime_checkable
class Clock(Protocol):
    """What an emulator needs from a clock: the time now, and a way to let time pass."""

    def time(self) -> float:
        """Seconds since the Unix epoch, as `time.time` gives them."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Let `seconds` pass (a request that takes that long)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``time() >= deadline`` (a background timer)."""
        ...


class SystemClock:
    """The real clock: `time.time` and real sleeps. The default of every emulator."""

    def time(self) -> float:
        """`time.time()`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """A real sleep (none for ``seconds <= 0``)."""
        if seconds > 0:
            await anyio.sleep(seconds)

    async def sleep_until(self, deadline: float) -> None:
        """A real sleep until `deadline` (epoch seconds)."""
        await self.sleep(deadline - time.time())

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when a test moves it; thread-safe, so a test thread can steer
    an emulator served from another thread.

    - `advance` and `set` move it; `time` reads it.
    - `sleep` advances the clock by the time asked for and returns at once (trio calls this an
      autojump clock): a request that "takes" 20 s of generation finishes immediately, with
      the clock 20 s later, so timings the emulator reports stay consistent.
    - `sleep_until` really waits, without polling, until the clock reaches the deadline; it
      is for background timers (a job finishing, a webhook firing) that a test releases with
      `advance`.
    """

    def __init__(self, start: float = FAKE_EPOCH) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self._waiters: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Event]] = []
        #: Total seconds that `sleep` skipped (what the same run would have slept for real).
        self.slept = 0.0

    def time(self) -> float:
        """The fake time, in epoch seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (>= 0); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back; advance({seconds!r})")
        with self._lock:
            self._now += seconds
            now = self._now
            due = [w for w in self._waiters if w[0] <= now]
            self._waiters = [w for w in self._waiters if w[0] > now]
        for _, loop, event in due:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)
        return now

    def set(self, epoch: float) -> float:
        """Move the clock to `epoch`, which must not be in its past."""
        return self.advance(epoch - self.time())

    async def sleep(self, seconds: float) -> None:
        """Advance by `seconds` and return at once (see the class docstring)."""
        if seconds > 0:
            self.slept += seconds
            self.advance(seconds)
        await anyio.lowlevel.checkpoint()  # still a checkpoint, as a real sleep is

    async def sleep_until(self, deadline: float) -> None:
        """Wait until a call to `advance` (or `set`) brings the clock to `deadline`."""
        event = asyncio.Event()
        with self._lock:
            if self._now >= deadline:
                return
            self._waiters.append((deadline, asyncio.get_running_loop(), event))
        await event.wait()

    def __repr__(self) -> str:
        return f"FakeClock(time={self.time()!r})"
