"""How one call travels, once its request is built.

route (each target in order) -> cache (or an identical call already running) -> circuit
breaker -> split ``n`` into calls the model accepts -> per call: rate limits, retries
(the server's hints win), budget reservation, resume-by-idempotency-key or the provider,
job store, ledger. ``AsyncClient`` mixes this in; it owns the services used here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ._cache import Coalescer, cache_key
from ._capabilities import ModelSpec
from ._charges import ChargeLifecycle, answer_lost_again
from ._claims import held_claim
from ._errors import (
    AllProvidersFailedError,
    ConfigurationError,
    ImageGenError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
    StorageError,
)
from ._gc import freeze_after_first_call
from ._http import call_scope
from ._ids import new_id
from ._jobstore import put_job
from ._models import Attempt, Cost, ImageRequest, ImageResult, Job
from ._resilience import RetryRecord, call_with_retries
from ._routing import Plan, Target
from ._sqlite import waits_until

if TYPE_CHECKING:  # pragma: no cover
    from ._config import Config
    from ._jobstore import JobStore
    from ._ledger import BudgetLimits, Ledger, RedisLedger
    from ._provider import Provider
    from ._ratelimit import RateLimiter
    from ._resilience import CircuitBreaker
    from ._storage import CacheGuard

__all__ = ["CallPipeline"]

log = logging.getLogger("imagegen")

T = TypeVar("T")

#: Deadline for a whole call when neither the request nor the caller gives one.
DEFAULT_CALL_TIMEOUT_S = 600.0


def _split_n(n: int, per_call: int) -> list[int]:
    per_call = max(1, per_call)
    return [per_call] * (n // per_call) + ([n % per_call] if n % per_call else [])


class CallPipeline(ChargeLifecycle):
    """The execution path shared by every public call of ``AsyncClient``."""

    config: Config
    jobs: JobStore
    cache: CacheGuard | None
    ledger: Ledger | RedisLedger | None
    circuits: CircuitBreaker
    limiter: RateLimiter
    _coalescer: Coalescer
    _background: set[asyncio.Future[Any]]
    _cache_writes: dict[str, ImageResult]
    _job_writes: dict[str, asyncio.Future[Any]]
    _fresh_keys: set[str]
    _limits: BudgetLimits

    def provider(self, name: str) -> Provider:  # pragma: no cover - provided by AsyncClient
        raise NotImplementedError

    def _plan(self, request: ImageRequest) -> Plan:  # pragma: no cover - provided by AsyncClient
        raise NotImplementedError

    def _model(self, provider: Provider, target: Target, request: ImageRequest) -> ModelSpec:  # pragma: no cover
        raise NotImplementedError

    def _in_background(self, work: Awaitable[Any]) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        error = None if task.cancelled() else task.exception()
        # Typed errors reach a caller (a shared call's) or a result's warnings (a store write's).
        if error is not None and not isinstance(error, ImageGenError):
            log.warning("imagegen background work failed: %s", error)

    async def _write_cache(self, cache: CacheGuard, key: str, result: ImageResult) -> None:
        try:
            # After the job store's record of the same result: its image files are then on disk,
            # and a disk cache links them rather than writing the bytes again.
            pending = self._job_writes.get(result.job_id or "")
            if pending is not None:
                await asyncio.wait([pending])
            await cache.aput(key, result)  # a fault is logged, never raised: the caller has its result
        finally:
            self._cache_writes.pop(key, None)

    async def _drain_background(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        aflush = getattr(self.jobs, "aflush", None)  # a job's image files land after its record
        if aflush is not None:
            try:
                await aflush()
            except ImageGenError as exc:
                log.warning("imagegen could not finish the job store's writes: %s", exc)

    async def _remember(self, job: Job, stored: Job | None) -> Job:
        if stored is not None:
            job = job.model_copy(update={"request": job.request or stored.request,
                                         "model": job.model or stored.model,
                                         "created_at": stored.created_at})
        await put_job(self.jobs, job)
        return job

    async def _guard(self, provider: Provider, call: Awaitable[T]) -> T:
        """Await a provider call; anything that is not an ImageGenError goes through its translator.

        What the translator does not know is a bug and propagates unchanged (see
        ``Provider.translate_error``).
        """
        try:
            return await call
        except ImageGenError:
            raise
        except Exception as exc:
            error = provider.translate_error(exc)
            if error is None:
                raise
            raise error from exc

    async def _run(self, request: ImageRequest) -> ImageResult:
        started = time.monotonic()
        deadline = started + (request.timeout or DEFAULT_CALL_TIMEOUT_S)
        with waits_until(deadline):  # no store is waited on past the call's deadline
            return await self._run_keyed(request, started, deadline)

    async def _run_keyed(self, request: ImageRequest, started: float, deadline: float) -> ImageResult:
        if request.idempotency_key is not None:
            # The caller's key may be in use by another process: hold it first (or wait for
            # that process's outcome), so the request is paid for once.
            async with held_claim(self.jobs, request, deadline) as stored:
                result = await self._run_plan(request, started, deadline)
                stored.extend(result.metadata.get("job_ids") or ([result.job_id] if result.job_id else []))
                return result
        # A key made here names no earlier job, so first tries need not look one up.
        key = new_id()
        self._fresh_keys.add(key)
        try:
            return await self._run_plan(request.model_copy(update={"idempotency_key": key}), started, deadline)
        finally:
            self._fresh_keys.discard(key)

    def _targets(self, plan: Plan, request: ImageRequest) -> tuple[Target, ...]:
        """The plan's targets, with the provider of a live earlier job for this key first: its
        job is resumed there rather than paid for again on the route's first provider."""
        key = request.idempotency_key
        if not plan.is_route or key is None or key in self._fresh_keys:
            return plan.targets
        prior = self.jobs.find(key)
        if prior is None or prior.status in ("failed", "cancelled"):
            return plan.targets
        return (*(t for t in plan.targets if t.provider == prior.provider),
                *(t for t in plan.targets if t.provider != prior.provider))

    async def _run_plan(self, request: ImageRequest, started: float, deadline: float) -> ImageResult:
        plan = self._plan(request)
        attempts: list[Attempt] = []
        targets = self._targets(plan, request)
        for index, target in enumerate(targets):
            t0 = time.monotonic()
            try:
                provider = self.provider(target.provider)
                spec = self._model(provider, target, request)
                warnings = provider.validate(request, spec)
                result = await self._run_cached(provider, spec, request, deadline, attempts)
            except ImageGenError as exc:
                attempts.append(_failed_attempt(target, exc, time.monotonic() - t0))
                submitted = await self._finish_submitted(target, request, deadline) if exc.retryable else None
                if submitted is None:
                    if not plan.falls_through(exc):
                        if plan.is_route:
                            exc.attempts = list(attempts)
                        raise
                    _announce_fallback(target.provider, exc, targets[index + 1:])
                    continue
                result, warnings, spec = submitted
            attempts.append(Attempt(provider=target.provider, model=spec.id, outcome="succeeded",
                                    duration_s=time.monotonic() - t0))
            return result.model_copy(update={
                "latency_s": time.monotonic() - started,
                "attempts": attempts,
                "warnings": [*warnings, *result.warnings],
            })
        error = AllProvidersFailedError(
            f"every provider of route {plan.name!r} failed: "
            + "; ".join(f"{a.provider}: {a.error_type}" for a in attempts),
            attempts=attempts)
        pending = self.jobs.find(request.idempotency_key) if request.idempotency_key else None
        error.pending_job_ids = [pending.id] if pending is not None and not pending.done else []
        raise error

    async def _finish_submitted(self, target: Target, request: ImageRequest,
                                deadline: float) -> tuple[ImageResult, list[str], ModelSpec] | None:
        """A provider that failed *after* accepting the job is waited on, not replaced: moving on
        to the next provider would pay for the same request twice."""
        job = self.jobs.find(request.idempotency_key) if request.idempotency_key else None
        if job is None or job.provider != target.provider or job.done:
            return None
        provider = self.provider(target.provider)
        spec = self._model(provider, target, request)
        try:
            result = await self._finish_job(provider, spec, job, deadline)
        except ImageGenError:
            return None
        return result, ["the provider failed after accepting the job; imagegen waited for that job "
                        "instead of paying another provider"], spec

    async def _run_cached(self, provider: Provider, spec: ModelSpec, request: ImageRequest, deadline: float,
                          attempts: list[Attempt]) -> ImageResult:
        """Serve from the cache, share an identical call already running, or call the provider."""
        name = provider.instance_name
        cache = self.cache
        if cache is None or not request.cache or {name, f"{name}/{spec.id}"} & set(self.config.cache.bypass) \
                or _names_inputs_by_url(request):
            self._check_circuit(name)
            return await self._run_on(provider, spec, request, deadline, attempts)
        key = cache_key(request, provider=name, model=spec.id)
        fresh = self._cache_writes.get(key)  # written in the background right now
        hit: ImageResult | None
        fault: str | None = None
        if fresh is not None:
            hit = _as_cache_hit(fresh)
        elif cache.blocking_get:
            hit, fault = await asyncio.to_thread(cache.lookup, key)  # a network round trip (Redis)
        else:
            # On the loop: a local index lookup costs less than the hop to a worker thread, and
            # only a hit reads image files.
            hit, fault = cache.lookup(key)
        if hit is None:
            self._check_circuit(name)
            result, shared = await self._coalescer.run(
                key, lambda: self._run_on(provider, spec, request, deadline, attempts))
            if not shared:
                # Written in the background: the caller has its images now, and a cache write is
                # no reason to make it wait. Until the write lands, hits are served from memory;
                # aclose() waits for writes still under way.
                if fault is None:
                    self._cache_writes[key] = result
                    self._in_background(self._write_cache(cache, key, result))
                return _with_warning(result, fault)
            hit = _as_cache_hit(result)
        if self.ledger is not None:
            try:
                await self.ledger.arecord(provider=name, model=spec.id, usd=0.0, credits=0.0, job_id=hit.job_id,
                                          cached=True, estimated=False)
            except StorageError as exc:  # a free hit: nothing to lose but the tally of hits
                log.warning("imagegen could not record a cache hit in the ledger: %s", exc.message)
        return _with_warning(hit, fault)

    def _check_circuit(self, name: str) -> None:
        if not self.circuits.allow(name):
            retry_in = self.circuits.state(name)["retry_in_s"] or 0.0
            raise ProviderUnavailableError(
                f"{name} is failing repeatedly, so its circuit is open; it will be tried again in "
                f"{retry_in:.0f}s", provider=name, retryable=True)

    async def _run_on(self, provider: Provider, spec: ModelSpec, request: ImageRequest,
                      deadline: float, attempts: list[Attempt]) -> ImageResult:
        """One provider, one model: split ``n`` into calls it accepts, run them (with retries), merge."""
        counts = _split_n(request.n, spec.max_images_per_call)
        if len(counts) == 1:  # the usual case: no copy of the request, no task for a gather of one
            return await self._call_with_retries(provider, spec, request, deadline, attempts)
        parts = [request.model_copy(update={"n": k, "idempotency_key": f"{request.idempotency_key}.{i}"
                                            if i else request.idempotency_key})
                 for i, k in enumerate(counts)]
        results = await asyncio.gather(*(self._call_with_retries(provider, spec, p, deadline, attempts)
                                         for p in parts))
        first = results[0]
        cost = sum((r.cost for r in results[1:]), first.cost)
        return first.model_copy(update={
            "images": [img for r in results for img in r.images],
            "cost": cost,
            "job_id": first.job_id,
            "text": [t for r in results for t in r.text],
            "metadata": {**first.metadata, "job_ids": [r.job_id for r in results]},
        })

    async def _call_with_retries(self, provider: Provider, spec: ModelSpec, request: ImageRequest,
                                 deadline: float, attempts: list[Attempt]) -> ImageResult:
        name = provider.instance_name
        key = request.idempotency_key
        if key is not None and key.partition(".")[0] not in self._fresh_keys:
            known = self.jobs.find(key)
            if known is not None and known.metadata.get("answer_lost"):
                # The key's outcome (billed, answer lost), told again before any slot or circuit is used.
                raise answer_lost_again(known)

        def on_retry(record: RetryRecord) -> None:
            attempts.append(_failed_attempt(Target(name, spec.id), record.error, record.duration_s,
                                            wait_s=record.wait_s))
            _announce_retry(name, record)

        tries = [0]
        limits = provider.rate_limits()

        async def once() -> ImageResult:
            tries[0] += 1
            try:
                async with self.limiter.slot(name, requests_per_minute=limits.calls_per_minute,
                                             max_concurrency=limits.max_concurrency, deadline=deadline):
                    result = await self._call(provider, spec, request, deadline, retry=tries[0] > 1)
                freeze_after_first_call()  # the provider's SDK is loaded now
            except ImageGenError as exc:
                self.circuits.record_failure(name, exc)
                if isinstance(exc, RateLimitError) and exc.retry_after:
                    self.limiter.pause(name, exc.retry_after)
                raise
            except BaseException:
                # Cancelled (or a bug): no verdict on the provider, but a half-open circuit's probe
                # slot must be given back, or the circuit would stay open for good.
                self.circuits.release(name)
                raise
            self.circuits.record_success(name)
            return result

        return await call_with_retries(once, config=self.config.retry, deadline=deadline, on_retry=on_retry)

    async def _resume(self, provider: Provider, spec: ModelSpec, request: ImageRequest,
                      deadline: float) -> ImageResult | None:
        """Finish a job already submitted for this logical request instead of paying for it twice."""
        existing = self.jobs.find(request.idempotency_key) if request.idempotency_key else None
        if existing is None or existing.provider != provider.instance_name:
            return None
        if existing.status == "succeeded" and existing.result is not None:
            return existing.result  # paid for and on record already
        if existing.status in ("queued", "running", "succeeded"):  # succeeded: outputs still to fetch
            return await self._finish_job(provider, spec, existing, deadline)
        return None  # failed or cancelled: a fresh submission is what the caller wants

    async def _call(self, provider: Provider, spec: ModelSpec, request: ImageRequest,
                    deadline: float, *, retry: bool = False) -> ImageResult:
        """One provider call through the charge lifecycle (``imagegen._charges``)."""
        fresh = not retry and (request.idempotency_key or "").partition(".")[0] in self._fresh_keys
        resumed = None if fresh else await self._resume(provider, spec, request, deadline)
        if resumed is not None:
            return resumed
        money = self._money(provider, spec, request)
        await self._hold_budget(money, deadline)
        method = provider.edit if request.operation == "edit" else provider.generate
        with call_scope(self._paid_scope(money, deadline)):
            try:
                result = await self._guard(provider, method(request, spec, deadline=deadline,
                                                            on_submit=lambda job: self._accept(money, job)))
            except BaseException as exc:
                result = await self._recovering(money, exc, deadline)
            return await self._succeeded(money, result, deadline)


def _names_inputs_by_url(request: ImageRequest) -> bool:
    """An input given as a URL may change behind it: such requests are not cached (nor shared),
    since their key could only be the URL, and fetching the bytes to key them would cost a
    download on every call."""
    inputs = [*request.images, *([request.mask] if request.mask is not None else [])]
    return any(image.data is None for image in inputs)


def _with_warning(result: ImageResult, warning: str | None) -> ImageResult:
    return result if warning is None else result.model_copy(update={"warnings": [*result.warnings, warning]})


def _as_cache_hit(result: ImageResult) -> ImageResult:
    return result.model_copy(update={"cached": True, "cost": Cost(usd=0.0, credits=0.0, estimated=False)})


_REASONS = {"RateLimitError": "rate limited", "ProviderUnavailableError": "unavailable",
            "ProviderTimeoutError": "timed out", "InvalidResponseError": "unreadable answer"}


def _reason(error: ImageGenError) -> str:
    kind = next((_REASONS[c.__name__] for c in type(error).__mro__ if c.__name__ in _REASONS), type(error).__name__)
    status = getattr(error, "status_code", None)
    return f"{kind} ({status})" if status else kind


def _announce_retry(provider: str, record: RetryRecord) -> None:
    """An INFO record a front end can show while the wait runs (``imagegen_*`` attributes)."""
    head = f"{provider}: {_reason(record.error)}"
    log.info("%s, retrying in %.0f s", head, record.wait_s,
             extra={"imagegen_event": "retry", "imagegen_provider": provider, "imagegen_head": head,
                    "imagegen_wait_s": record.wait_s})


def _announce_fallback(provider: str, error: ImageGenError, rest: tuple[Target, ...]) -> None:
    then = f"trying {rest[0].provider}" if rest else "no provider left"
    log.info("%s: %s, %s", provider, _reason(error), then,
             extra={"imagegen_event": "fallback", "imagegen_provider": provider})


def _failed_attempt(target: Target, exc: ImageGenError, duration: float, *, wait_s: float = 0.0) -> Attempt:
    return Attempt(
        provider=target.provider,
        model=target.model,
        outcome="skipped" if isinstance(exc, (InvalidRequestError, ConfigurationError)) else "failed",
        error_type=type(exc).__name__,
        error=exc.message,
        status_code=exc.status_code if isinstance(exc, ProviderError) else None,
        retryable=exc.retryable,
        retry_after=exc.retry_after if isinstance(exc, ProviderError) else None,
        wait_s=wait_s,
        duration_s=duration,
    )
