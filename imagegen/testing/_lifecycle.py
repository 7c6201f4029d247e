"""Where an emulated asynchronous job is in its life: queued, running or done."""

from __future__ import annotations

from typing import Literal

from ._clock import Clock

__all__ = ["JobTimeline", "Phase"]

Phase = Literal["queued", "running", "done"]


class JobTimeline:
    """The life of one emulated job on the emulator's `Clock`.

    A job is ``queued`` for `queued_s`, then ``running`` for `running_s`, then ``done``. With
    `done_after_polls`, it is also done from the status poll of that number on (vendors that
    finish "after a few polls" in tests), whichever comes first. `finish` ends it now, as a
    vendor does when it cancels or fails a job. Nothing here sleeps: the phase is computed from
    the clock each time it is asked, so a `FakeClock` moves jobs along with ``advance``.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        queued_s: float = 0.0,
        running_s: float = 0.0,
        done_after_polls: int | None = None,
    ) -> None:
        if queued_s < 0 or running_s < 0:
            raise ValueError("queued_s and running_s must be >= 0")
        if done_after_polls is not None and done_after_polls < 1:
            raise ValueError(f"done_after_polls must be >= 1, got {done_after_polls!r}")
        self.clock = clock
        #: When the job was created, started running, and is due to finish (epoch seconds).
        self.created_at = clock.time()
        self.running_at = self.created_at + queued_s
        self.due_at = self.running_at + running_s
        self.done_after_polls = done_after_polls
        #: Status polls seen so far (count them with `poll`).
        self.polls = 0
        #: When the job was seen done (epoch seconds), once it is.
        self.finished_at: float | None = None

    def phase(self) -> Phase:
        """The phase now; the first call that finds the job done fixes `finished_at`."""
        if self.finished_at is not None:
            return "done"
        now = self.clock.time()
        polled_out = self.done_after_polls is not None and self.polls >= self.done_after_polls
        if now >= self.due_at or polled_out:
            self.finished_at = min(now, self.due_at) if not polled_out else now
            return "done"
        return "queued" if now < self.running_at else "running"

    def poll(self) -> Phase:
        """Count one status poll, then return the phase."""
        self.polls += 1
        return self.phase()

    def finish(self) -> None:
        """End the job now (no-op if it already ended)."""
        if self.finished_at is None:
            self.finished_at = self.clock.time()

    @property
    def done(self) -> bool:
        return self.phase() == "done"

    def progress(self) -> float:
        """0.0 while queued, rising to 1.0 across the running time; 1.0 once done."""
        if self.phase() == "done":
            return 1.0
        span = self.due_at - self.running_at
        if span <= 0:
            return 0.0
        return round(min(1.0, max(0.0, (self.clock.time() - self.running_at) / span)), 3)

    def elapsed_s(self) -> float:
        """Seconds from creation to the end (or to now, while the job is not done)."""
        end = self.finished_at if self.finished_at is not None else self.clock.time()
        return max(0.0, end - self.created_at)

    def __repr__(self) -> str:
        return f"<JobTimeline {self.phase()} polls={self.polls} elapsed={self.elapsed_s():.3f}s>"
