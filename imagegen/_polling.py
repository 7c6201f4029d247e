"""How often ``Provider.wait`` polls a job: a backoff, or polls placed where jobs finish.

A provider declares its default (``Provider.poll_schedule``); a configuration replaces it
with ``poll_schedule = [initial, factor, cap]`` (or a table of those keys) under the
provider's ``[providers.<name>]`` table, which every provider's settings accept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

__all__ = ["AdaptivePollSchedule", "PollSchedule", "Schedule"]


class Schedule(Protocol):
    """Anything that yields the delays, in seconds, before each status poll."""

    def delays(self) -> Iterator[float]: ...


@dataclass(frozen=True)
class PollSchedule:
    """Delays between status polls: ``initial``, times ``factor`` each poll, capped at ``cap``."""

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.cap, delay * self.factor)


@dataclass(frozen=True)
class AdaptivePollSchedule:
    """Polls placed where jobs finish: at evenly spaced quantiles of a latency distribution.

    ``times`` are the planned poll times, in seconds after submission, dense where many
    jobs finish and sparse where few do; past the last one, ``then`` takes over (so a job
    slower than anything seen is still followed). Build one from observed latencies, e.g.
    the elapsed times of recorded cassettes, with ``from_latencies``; see
    ``benchmarks/wireflow_polling.py`` for how it compares with ``PollSchedule``.
    """

    times: tuple[float, ...]
    then: PollSchedule = PollSchedule()

    @classmethod
    def from_latencies(cls, latencies: Iterable[float], *, polls: int = 8, low: float = 0.02,
                       high: float = 0.98, then: PollSchedule | None = None) -> AdaptivePollSchedule:
        """``polls`` poll times at the ``low`` .. ``high`` quantiles of ``latencies`` (seconds)."""
        ordered = sorted(float(v) for v in latencies if v >= 0)
        if not ordered:
            raise ValueError("AdaptivePollSchedule needs at least one latency")
        if polls < 1 or not 0.0 <= low <= high <= 1.0:
            raise ValueError("polls must be >= 1 and 0 <= low <= high <= 1")
        steps = [low + (high - low) * i / max(1, polls - 1) for i in range(polls)]
        times = sorted({ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in steps})
        return cls(times=tuple(t for t in times if t > 0) or (ordered[-1] or 1.0,), then=then or PollSchedule())

    def delays(self) -> Iterator[float]:
        previous = 0.0
        for moment in self.times:
            yield moment - previous
            previous = moment
        yield from self.then.delays()
