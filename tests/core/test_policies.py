"""The pure policies, tested directly on a fake clock: retries, the circuit breaker, the rate
limiter, the coalescer and budget limits. Nothing here sleeps or touches the network."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from imagegen import (
    BudgetExceededError,
    ContentPolicyError,
    ImageResult,
    InvalidResponseError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen._cache import Coalescer
from imagegen._ledger import BudgetLimits, Ledger
from imagegen._ratelimit import LocalWindow, RateLimiter
from imagegen._resilience import CircuitBreaker, CircuitConfig, RetryConfig, RetryRecord, call_with_retries
from imagegen.testing import FakeClock


class Flaky:
    """A call that raises the given errors in turn, then returns "ok"; it counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def unavailable() -> ProviderUnavailableError:
    return ProviderUnavailableError("down", provider="p", status_code=503)


async def retried(call: Flaky, clock: FakeClock, *, deadline_in: float = 600.0, **config: Any) -> Any:
    records: list[RetryRecord] = []
    outcome = await call_with_retries(call, config=RetryConfig(**config), deadline=clock.time() + deadline_in,
                                      on_retry=records.append, clock=clock.time, sleep=clock.sleep)
    return outcome, records


# -- call_with_retries ----------------------------------------------------------------------------


async def test_a_first_success_neither_retries_nor_sleeps() -> None:
    clock, call = FakeClock(), Flaky()
    assert (await retried(call, clock))[0] == "ok"
    assert call.calls == 1 and clock.slept == 0


async def test_retryable_failures_back_off_exponentially_with_full_jitter() -> None:
    clock, call = FakeClock(), Flaky(unavailable(), unavailable())
    outcome, records = await retried(call, clock, max_attempts=3, initial_backoff_s=1.0, max_backoff_s=30.0)
    assert outcome == "ok" and call.calls == 3
    waits = [r.wait_s for r in records]
    assert 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0  # full jitter below 1 s, then 2 s
    assert clock.slept == pytest.approx(sum(waits))


async def test_the_servers_hint_wins_over_backoff() -> None:
    clock = FakeClock()
    call = Flaky(RateLimitError("slow", retry_after=7.0), RateLimitError("slow", retry_after=3.0))
    _, records = await retried(call, clock, initial_backoff_s=0.01)
    assert [r.wait_s for r in records] == [7.0, 3.0] and clock.slept == 10.0


async def test_a_hint_past_the_deadline_or_the_longest_wait_ends_the_retries_at_once() -> None:
    clock = FakeClock()
    call = Flaky(RateLimitError("slow", retry_after=30.0))
    with pytest.raises(RateLimitError):
        await retried(call, clock, deadline_in=20.0)
    assert call.calls == 1 and clock.slept == 0
    call = Flaky(RateLimitError("slow", retry_after=90.0))
    with pytest.raises(RateLimitError):
        await retried(call, clock, max_wait_s=60.0)
    assert call.calls == 1 and clock.slept == 0


async def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    clock = FakeClock()
    call = Flaky(*[unavailable() for _ in range(5)])
    with pytest.raises(ProviderUnavailableError):
        await retried(call, clock, max_attempts=3, initial_backoff_s=0.5)
    assert call.calls == 3


async def test_errors_that_retrying_cannot_cure_are_raised_at_once() -> None:
    clock, call = FakeClock(), Flaky(ContentPolicyError("no", reason="SAFETY"))
    with pytest.raises(ContentPolicyError):
        await retried(call, clock)
    assert call.calls == 1 and clock.slept == 0


async def test_a_bug_is_not_retried() -> None:
    clock, call = FakeClock(), Flaky(KeyError("id"))
    with pytest.raises(KeyError):
        await retried(call, clock)
    assert call.calls == 1


# -- CircuitBreaker ------------------------------------------------------------------------------


def test_the_circuit_opens_after_the_threshold_and_probes_once_after_the_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitConfig(failure_threshold=3, cooldown_s=30.0), clock=clock.time)
    for _ in range(3):
        assert breaker.allow("p")
        breaker.record_failure("p", unavailable())
    assert not breaker.allow("p") and breaker.state("p")["retry_in_s"] == 30.0
    clock.advance(29.0)
    assert not breaker.allow("p")
    clock.advance(1.0)
    assert breaker.allow("p")  # the one probe
    assert not breaker.allow("p")  # nobody else while it runs
    breaker.record_failure("p", InvalidResponseError("garbled"))
    assert breaker.state("p")["state"] == "open"  # the probe failed: open again, for a new cooldown
    clock.advance(30.0)
    assert breaker.allow("p")
    breaker.record_success("p")
    assert breaker.state("p") == {"state": "closed", "failures": 0, "retry_in_s": None}


def test_refusals_and_released_probes_say_nothing_about_the_providers_health() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(CircuitConfig(failure_threshold=1, cooldown_s=5.0), clock=clock.time)
    breaker.record_failure("p", ContentPolicyError("no"))
    assert breaker.state("p")["state"] == "closed"
    breaker.record_failure("p", unavailable())
    clock.advance(5.0)
    assert breaker.allow("p") and not breaker.allow("p")
    breaker.release("p")  # the probe ended in a bug or a cancellation: no verdict
    assert breaker.allow("p")


# -- RateLimiter ---------------------------------------------------------------------------------


async def test_calls_per_minute_slide_over_the_window_on_the_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock.time, sleep=clock.sleep)
    started = clock.time()
    for _ in range(3):
        async with limiter.slot("p", requests_per_minute=2, max_concurrency=None, deadline=started + 600):
            pass
    # The third call waited for the first one's minute to pass, in small steps, without sleeping.
    assert 60.0 <= clock.time() - started < 61.5


async def test_a_slot_past_the_deadline_is_a_rate_limit_error_without_waiting() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock.time, sleep=clock.sleep)
    async with limiter.slot("p", requests_per_minute=1, max_concurrency=None, deadline=clock.time() + 600):
        pass
    with pytest.raises(RateLimitError) as info:
        async with limiter.slot("p", requests_per_minute=1, max_concurrency=None, deadline=clock.time() + 10):
            pass
    assert info.value.status_code is None and info.value.retry_after == pytest.approx(60.0)
    assert clock.slept == 0


async def test_a_servers_wait_hint_pauses_every_call_to_the_provider() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock.time, sleep=clock.sleep)
    limiter.pause("p", 12.0)
    started = clock.time()
    async with limiter.slot("p", requests_per_minute=None, max_concurrency=None, deadline=started + 600):
        assert clock.time() - started == pytest.approx(12.0)
    async with limiter.slot("other", requests_per_minute=None, max_concurrency=None, deadline=started + 600):
        assert clock.time() - started == pytest.approx(12.0)  # other providers are not held
    limiter.pause("p", 100.0)
    with pytest.raises(RateLimitError, match="past the deadline"):
        async with limiter.slot("p", requests_per_minute=None, max_concurrency=None, deadline=clock.time() + 5):
            pass


async def test_concurrency_is_capped_per_provider() -> None:
    limiter = RateLimiter()
    inside, most = 0, 0
    release = asyncio.Event()

    async def one() -> None:
        nonlocal inside, most
        async with limiter.slot("p", requests_per_minute=None, max_concurrency=2, deadline=float("inf")):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert inside == 2
    release.set()
    await asyncio.gather(*tasks)
    assert most == 2


async def test_the_local_window_forgets_calls_older_than_a_minute() -> None:
    clock = FakeClock()
    window = LocalWindow(clock.time)
    assert await window.try_acquire("k", 1) == 0
    assert await window.try_acquire("k", 1) == pytest.approx(60.0)
    clock.advance(60.0)
    assert await window.try_acquire("k", 1) == 0


# -- Coalescer -----------------------------------------------------------------------------------


def _result() -> ImageResult:
    return ImageResult(images=[], provider="p", model="m")


async def test_identical_calls_in_flight_share_one_upstream_call() -> None:
    coalescer, gate, calls = Coalescer(), asyncio.Event(), []

    async def upstream() -> ImageResult:
        calls.append(1)
        await gate.wait()
        return _result()

    tasks = [asyncio.create_task(coalescer.run("key", upstream)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    assert len(calls) == 1 and [shared for _, shared in outcomes] == [False, True, True]
    await coalescer.run("key", upstream)  # nothing in flight any more: a new call
    assert len(calls) == 2


async def test_a_shared_failure_reaches_every_waiter_and_is_not_kept() -> None:
    coalescer, gate = Coalescer(), asyncio.Event()

    async def upstream() -> ImageResult:
        await gate.wait()
        raise unavailable()

    tasks = [asyncio.create_task(coalescer.run("key", upstream)) for _ in range(2)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, ProviderUnavailableError) for o in outcomes)
    assert await coalescer.run("key", lambda: asyncio.sleep(0, _result())) == (_result(), False)


# -- budget limits -------------------------------------------------------------------------------


def test_budget_windows_are_the_utc_day_month_and_all_time() -> None:
    now = datetime(2026, 11, 30, 17, 45, tzinfo=UTC).timestamp()
    windows = BudgetLimits(daily_usd=1.0, monthly_usd=10.0, total_usd=100.0).windows(now)
    assert windows == [("daily", datetime(2026, 11, 30, tzinfo=UTC).timestamp(), 1.0),
                       ("monthly", datetime(2026, 11, 1, tzinfo=UTC).timestamp(), 10.0),
                       ("total", 0.0, 100.0)]
    assert BudgetLimits(monthly_usd=5.0).windows(now) == [(*windows[1][:2], 5.0)]


def test_reservations_hold_the_budget_until_settled_or_released() -> None:
    ledger, limits = Ledger(":memory:"), BudgetLimits(daily_usd=1.0)
    first = ledger.reserve(provider="p", model="m", usd=0.6, limits=limits)
    with pytest.raises(BudgetExceededError) as info:  # 0.6 held + 0.6 asked > 1.0
        ledger.reserve(provider="p", model="m", usd=0.6, limits=limits)
    assert (info.value.limit_usd, info.value.spent_usd, info.value.estimate_usd) == (1.0, 0.6, 0.6)
    ledger.release(first)  # the call charged nothing
    second = ledger.reserve(provider="p", model="m", usd=0.6, limits=limits)
    ledger.settle(second, usd=0.3, credits=None, job_id="p:1", cached=False, estimated=False)  # it cost less
    ledger.reserve(provider="p", model="m", usd=0.7, limits=limits)  # 0.3 + 0.7 fits exactly
    with pytest.raises(BudgetExceededError):
        ledger.reserve(provider="p", model="m", usd=0.01, limits=limits)
