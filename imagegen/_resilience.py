"""Retries and circuit breaking around each provider call.

Retries use tenacity: exponential backoff with full jitter, capped, unless the
server gave a wait hint (``RateLimitError.retry_after``), which always wins. A hint
that would outlast the caller's deadline ends the retries at once, so a route moves
on to its next provider instead of sleeping past the deadline.

A circuit breaker per provider instance counts consecutive failures that point at
the provider itself (unavailable, timeouts, unreadable answers). Past a threshold
it opens: the provider is skipped for a cooldown, then one probe call is let
through (half-open); its success closes the circuit, its failure re-opens it.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ._errors import (
    ImageGenError,
    InvalidResponseError,
    ProviderError,
    ProviderUnavailableError,
)

if TYPE_CHECKING:  # pragma: no cover
    from tenacity import RetryCallState

__all__ = ["CircuitBreaker", "CircuitConfig", "CircuitState", "RetryConfig", "call_with_retries"]

T = TypeVar("T")


class RetryConfig(BaseModel):
    """``[retry]``: how often and how patiently one provider is retried before moving on."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    max_attempts: int = Field(default=3, ge=1, le=20)
    initial_backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)
    #: Waits (hints included) longer than this are not slept: the call moves on (or fails).
    max_wait_s: float = Field(default=60.0, ge=0)


class CircuitConfig(BaseModel):
    """``[circuit]``: when a failing provider is skipped, and for how long."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, ge=0)


@dataclass
class RetryRecord:
    """One failed try that was retried, with the wait before the next one."""

    error: ImageGenError
    wait_s: float
    duration_s: float


def _backoff(config: RetryConfig, attempt: int) -> float:
    ceiling = min(config.max_backoff_s, config.initial_backoff_s * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # full jitter: spreads a thundering herd


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    config: RetryConfig,
    deadline: float,
    on_retry: Callable[[RetryRecord], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``call`` until it succeeds, fails for good, runs out of attempts or of time.

    ``deadline`` is a ``clock()`` value; ``clock`` and ``sleep`` are injectable so the policy can
    be tested on a fake clock without sleeping.
    """
    started = [clock()]
    # Fast path: most calls succeed at once, and tenacity's machinery costs a few hundred
    # microseconds per call. Only a retryable failure enters the retry loop, whose first
    # attempt re-raises that failure so the loop's accounting stays in one place.
    try:
        return await call()
    except ImageGenError as exc:
        if not exc.retryable:
            raise
        seen = [exc]

    async def attempt() -> T:
        if seen:
            raise seen.pop()
        return await call()

    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt  # deferred: import time

    planned: dict[int, float] = {}

    def planned_wait(state: RetryCallState) -> float:
        # Drawn once per attempt: the deadline check, the record and the sleep see the same wait.
        if state.attempt_number not in planned:
            error = state.outcome.exception() if state.outcome else None
            hint = error.retry_after if isinstance(error, ProviderError) else None
            planned[state.attempt_number] = float(hint) if hint is not None else _backoff(config, state.attempt_number)
        return planned[state.attempt_number]

    def give_up(state: RetryCallState) -> bool:
        if stop_after_attempt(config.max_attempts)(state):
            return True
        wait = planned_wait(state)
        return wait > config.max_wait_s or clock() + wait >= deadline

    def before_sleep(state: RetryCallState) -> None:
        now = clock()
        if on_retry is not None and state.outcome is not None:
            on_retry(RetryRecord(error=state.outcome.exception(),  # type: ignore[arg-type]
                                 wait_s=planned_wait(state), duration_s=now - started[0]))
        started[0] = now + planned_wait(state)

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, ImageGenError) and e.retryable),
        stop=give_up,
        wait=planned_wait,
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
    return await retrying(attempt)


CircuitState = Literal["closed", "open", "half_open"]


@dataclass
class _Circuit:
    state: CircuitState = "closed"
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


def counts_against_provider(error: ImageGenError) -> bool:
    """Failures that say the provider is unwell (not the caller's request, not a refusal)."""
    return isinstance(error, (ProviderUnavailableError, InvalidResponseError))


@dataclass
class CircuitBreaker:
    """Per-provider circuits, shared by every call of one client (thread-safe)."""

    config: CircuitConfig = field(default_factory=CircuitConfig)
    clock: Callable[[], float] = time.monotonic
    _circuits: dict[str, _Circuit] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, provider: str) -> bool:
        """May a call go to ``provider`` now? Lets one probe through after the cooldown."""
        with self._lock:
            circuit = self._circuits.setdefault(provider, _Circuit())
            if circuit.state == "closed":
                return True
            if circuit.state == "open" and self.clock() - (circuit.opened_at or 0) >= self.config.cooldown_s:
                circuit.state = "half_open"
            if circuit.state == "half_open" and not circuit.probing:
                circuit.probing = True
                return True
            return False

    def record_success(self, provider: str) -> None:
        with self._lock:
            self._circuits[provider] = _Circuit()

    def record_failure(self, provider: str, error: ImageGenError) -> None:
        if not counts_against_provider(error):
            self.release(provider)
            return
        with self._lock:
            circuit = self._circuits.setdefault(provider, _Circuit())
            circuit.failures += 1
            if circuit.state == "half_open" or circuit.failures >= self.config.failure_threshold:
                circuit.state, circuit.opened_at, circuit.probing = "open", self.clock(), False

    def release(self, provider: str) -> None:
        """A probe ended without a verdict on the provider's health (e.g. a refusal)."""
        with self._lock:
            circuit = self._circuits.get(provider)
            if circuit is not None:
                circuit.probing = False

    def state(self, provider: str) -> dict[str, object]:
        with self._lock:
            circuit = self._circuits.get(provider, _Circuit())
            retry_in = None
            if circuit.state == "open" and circuit.opened_at is not None:
                retry_in = max(0.0, self.config.cooldown_s - (self.clock() - circuit.opened_at))
            return {"state": circuit.state, "failures": circuit.failures, "retry_in_s": retry_in}
