"""``AsyncClient``: the one implementation of generate, edit, submit, status, wait,
cancel and estimate. ``Client`` (in ``_sync``) is a thin facade over it.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from ._cache import CacheBackend, Coalescer, cache_key
from ._capabilities import ModelSpec
from ._config import Config, config_from_mapping, load_config, resolve_secret
from ._errors import (
    AllProvidersFailedError,
    ConfigurationError,
    ImageGenError,
    InvalidRequestError,
    JobNotFoundError,
    ProviderUnavailableError,
    RateLimitError,
    UnknownProviderError,
)
from ._jobstore import JobStore
from ._ledger import BudgetLimits, Ledger, RedisLedger
from ._models import Attempt, Cost, ImageRequest, ImageResult, Job, split_job_id
from ._plugins import PluginRegistry, registry as default_registry
from ._provider import Provider
from ._resilience import CircuitBreaker, RetryRecord, call_with_retries
from ._routing import Plan, Target, resolve
from ._services import make_cache, make_job_store, make_ledger, make_limiter

__all__ = ["AsyncClient"]

#: Deadline for a whole call when neither the request nor the caller gives one.
DEFAULT_CALL_TIMEOUT_S = 600.0
_VERSION = "0.1.0"


def _split_n(n: int, per_call: int) -> list[int]:
    per_call = max(1, per_call)
    return [per_call] * (n // per_call) + ([n % per_call] if n % per_call else [])


class AsyncClient:
    """Generate and edit images through configured providers, asynchronously.

    ``config`` is a ``Config``, a mapping of config keys, a path to a TOML file, or
    None (find the config file as documented in ``imagegen._config``).
    ``transports`` injects an httpx transport per provider instance (tests, proxies).
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        registry: PluginRegistry | None = None,
        job_store: JobStore | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        if isinstance(config, Config):
            self.config = config
        elif isinstance(config, Mapping):
            self.config = config_from_mapping(dict(config))
        else:
            self.config = load_config(config)
        self.registry = registry or default_registry
        self.jobs = job_store or make_job_store(self.config)
        self._transports = dict(transports or {})
        self._instances: dict[str, Provider] = {}
        self._http: list[httpx.AsyncClient] = []
        self.circuits = CircuitBreaker(self.config.circuit)
        self.limiter = make_limiter(self.config)
        self.cache: CacheBackend | None = make_cache(self.config)
        self.ledger: Ledger | RedisLedger | None = make_ledger(self.config)
        self._coalescer = Coalescer()
        budget = self.config.budget
        self._limits = BudgetLimits(budget.daily_usd, budget.monthly_usd, budget.total_usd)
        self._check_config()

    # -- configuration --------------------------------------------------------------------

    def circuit_state(self, name: str) -> dict[str, object]:
        """The circuit breaker's view of a provider: state (closed/open/half_open), failures, retry_in_s."""
        return self.circuits.state(name)

    def _plugin_of(self, name: str) -> type[Provider]:
        table = self.config.providers.get(name, {})
        return self.registry.provider_class(table.get("plugin") or name)

    def _settings_of(self, name: str, *, resolve_secrets: bool) -> Any:
        cls = self._plugin_of(name)
        table = dict(self.config.providers.get(name, {}))
        if resolve_secrets:
            for key in ("api_key",):
                if key in table:
                    table[key] = resolve_secret(table[key], key=f"providers.{name}.{key}")
        else:
            table.pop("api_key", None)
        try:
            return cls.Settings.model_validate(table)
        except ValidationError as exc:
            parts = [f"providers.{name}.{'.'.join(map(str, e['loc']))}: "
                     f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}" for e in exc.errors()]
            raise ConfigurationError("; ".join(parts)) from None

    def _check_config(self) -> None:
        """Fail at construction on unknown plugins, bad provider keys and dangling routes."""
        for name in self.config.providers:
            self._settings_of(name, resolve_secrets=False)
        known = set(self.config.providers) | set(self.registry.providers())
        for route_name, route in self.config.routes.items():
            for entry in route.chain:
                if entry.partition("/")[0] not in known:
                    raise ConfigurationError(
                        f"routes.{route_name}.chain names {entry!r}, which is neither a configured "
                        f"provider nor an installed plugin")

    def provider(self, name: str) -> Provider:
        """The provider instance configured as ``name`` (created on first use)."""
        if name not in self._instances:
            cls = self._plugin_of(name)
            settings = self._settings_of(name, resolve_secrets=True)
            http = httpx.AsyncClient(
                timeout=settings.timeout or cls.default_timeout,
                limits=httpx.Limits(max_connections=settings.max_concurrency or 100,
                                    max_keepalive_connections=20),
                transport=self._transports.get(name),
                headers={"User-Agent": f"imagegen/{_VERSION}"},
            )
            # An unused httpx client holds no connections, so a failing constructor leaks nothing.
            self._instances[name] = cls(instance_name=name, settings=settings, http=http)
            self._http.append(http)
        return self._instances[name]

    def _plan(self, request: ImageRequest) -> Plan:
        wanted = request.provider
        if request.model and wanted and "/" not in wanted and wanted not in self.config.routes:
            wanted = f"{wanted}/{request.model}"
        return resolve(self.config, wanted, known_plugins=set(self.registry.providers()))

    def _model(self, provider: Provider, target: Target, request: ImageRequest) -> ModelSpec:
        """The model to use, with the config's price overrides (``[prices]``) applied."""
        spec = provider.model_spec(target.model or request.model)
        name = provider.instance_name
        override = self.config.prices.get(f"{name}/{spec.id}") or self.config.prices.get(name)
        if override is None:
            return spec
        changes = override.model_dump(exclude={"currency"}, exclude_none=True)
        if spec.price is not None:
            if "rates" in changes:
                changes["rates"] = {**spec.price.rates, **changes["rates"]}
            price = spec.price.model_copy(update=changes)
        else:
            from ._capabilities import Price

            price = Price.model_validate({"as_of": changes.pop("as_of", None) or "1970-01-01", **changes})
        return spec.model_copy(update={"price": price})

    # -- public interface -----------------------------------------------------------------

    async def generate(self, prompt: str | ImageRequest, **options: Any) -> ImageResult:
        """Generate images from a prompt (or run a prepared ``ImageRequest``)."""
        request = prompt if isinstance(prompt, ImageRequest) else ImageRequest.build(prompt=prompt, **options)
        return await self._run(request)

    async def edit(self, prompt: str, *, images: Any, mask: Any = None, **options: Any) -> ImageResult:
        """Edit or combine ``images`` (bytes, paths, URLs or Images) as the prompt says."""
        request = ImageRequest.build(prompt=prompt, operation="edit", images=images, mask=mask, **options)
        return await self._run(request)

    async def generate_many(self, requests: Iterable[ImageRequest | str], *, concurrency: int = 4,
                            on_result: Callable[[int, ImageResult | ImageGenError], None] | None = None,
                            ) -> list[ImageResult | ImageGenError]:
        """Run many requests, at most ``concurrency`` at a time.

        A failure does not stop the batch: its slot in the returned list (in input order)
        holds the error. ``on_result(index, outcome)`` is called as each one finishes.
        """
        if concurrency < 1:
            raise InvalidRequestError(f"concurrency must be at least 1, not {concurrency}")
        gate = asyncio.Semaphore(concurrency)
        outcomes: list[ImageResult | ImageGenError | None] = []

        async def one(index: int, item: ImageRequest | str) -> None:
            async with gate:
                try:
                    request = item if isinstance(item, ImageRequest) else ImageRequest.build(prompt=item)
                    outcome: ImageResult | ImageGenError = await self._run(request)
                except ImageGenError as exc:
                    outcome = exc
            outcomes[index] = outcome
            if on_result is not None:
                on_result(index, outcome)

        items = list(requests)
        outcomes.extend([None] * len(items))
        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        return outcomes  # type: ignore[return-value]

    async def estimate_many(self, requests: Iterable[ImageRequest | str]) -> Cost:
        """Expected cost of a whole batch; ``breakdown`` holds USD per provider/model."""
        total = Cost(usd=0.0, estimated=True)
        for item in requests:
            request = item if isinstance(item, ImageRequest) else ImageRequest.build(prompt=item)
            cost = await self.estimate(request)
            target = self._plan(request).targets[0]
            model = request.model or target.model or self.provider(target.provider).model_spec().id
            total = total + cost.model_copy(update={"breakdown": {f"{target.provider}/{model}": cost.usd or 0.0}})
        return total

    async def estimate(self, request: ImageRequest | str, **options: Any) -> Cost:
        """Expected cost of ``request`` on its first provider, from the price book. No network call."""
        if isinstance(request, str):
            request = ImageRequest.build(prompt=request, **options)
        target = self._plan(request).targets[0]
        provider = self.provider(target.provider)
        spec = self._model(provider, target, request)
        provider.validate(request, spec)
        return provider.estimate(request, spec)

    async def submit(self, request: ImageRequest | str, **options: Any) -> Job:
        """Start a job and return it at once; finish it later with ``status`` or ``wait``."""
        if isinstance(request, str):
            request = ImageRequest.build(prompt=request, **options)
        target = self._plan(request).targets[0]
        provider = self.provider(target.provider)
        spec = self._model(provider, target, request)
        provider.validate(request, spec)
        if request.n > spec.max_images_per_call:
            raise InvalidRequestError(
                f"submit() sends one call and {provider.instance_name}/{spec.id} returns at most "
                f"{spec.max_images_per_call} image(s) per call; use generate(), which splits n")
        job = await self._guard(provider, provider.submit(request, spec))
        job = job.model_copy(update={"request": request, "model": spec.id})
        self.jobs.put(job)
        return job

    async def status(self, job_id: str) -> Job:
        """Where a job stands: from the job store when it is over, else from its provider."""
        name, native_id = split_job_id(job_id)
        stored = self.jobs.get(job_id)
        if stored is not None and stored.done:
            return stored
        try:
            provider = self.provider(name)
        except UnknownProviderError:
            raise JobNotFoundError(f"job {job_id!r}: no provider {name!r} is configured") from None
        job = await self._guard(provider, provider.status(native_id))
        return self._remember(job, stored)

    async def wait(self, job_id: str, timeout: float = 120.0) -> ImageResult:
        """Wait for a job to finish and return its result (raises if it failed or times out)."""
        job = await self.status(job_id)
        provider = self.provider(job.provider)
        deadline = time.monotonic() + timeout
        result = await self._guard(provider, provider.wait(job, deadline=deadline))
        self._remember(job.model_copy(update={"status": "succeeded", "result": result}), job)
        return result

    async def cancel(self, job_id: str) -> Job:
        name, native_id = split_job_id(job_id)
        provider = self.provider(name)
        job = await self._guard(provider, provider.cancel(native_id))
        return self._remember(job, self.jobs.get(job_id))

    def providers(self) -> dict[str, type[Provider]]:
        """Installed provider plugins by name."""
        return self.registry.providers()

    async def aclose(self) -> None:
        for provider in self._instances.values():
            await provider.aclose()
        for http in self._http:
            await http.aclose()
        await self.limiter.aclose()
        self._instances.clear()
        self._http.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- execution ------------------------------------------------------------------------

    def _remember(self, job: Job, stored: Job | None) -> Job:
        if stored is not None:
            job = job.model_copy(update={"request": job.request or stored.request,
                                         "model": job.model or stored.model,
                                         "created_at": stored.created_at})
        self.jobs.put(job)
        return job

    async def _guard(self, provider: Provider, call: Any) -> Any:
        """Await a provider call; anything that is not an ImageGenError goes through its translator."""
        try:
            return await call
        except ImageGenError:
            raise
        except Exception as exc:
            raise provider.translate_error(exc) from exc

    async def _run(self, request: ImageRequest) -> ImageResult:
        if request.idempotency_key is None:
            request = request.model_copy(update={"idempotency_key": uuid.uuid4().hex})
        plan = self._plan(request)
        attempts: list[Attempt] = []
        started = time.monotonic()
        deadline = started + (request.timeout or DEFAULT_CALL_TIMEOUT_S)
        for target in plan.targets:
            t0 = time.monotonic()
            try:
                provider = self.provider(target.provider)
                spec = self._model(provider, target, request)
                warnings = provider.validate(request, spec)
                result = await self._run_cached(provider, spec, request, deadline, attempts)
            except ImageGenError as exc:
                attempts.append(_failed_attempt(target, exc, time.monotonic() - t0))
                if not plan.falls_through(exc):
                    if plan.is_route:
                        exc.attempts = list(attempts)  # type: ignore[attr-defined]
                    raise
                continue
            attempts.append(Attempt(provider=target.provider, model=spec.id, outcome="succeeded",
                                    duration_s=time.monotonic() - t0))
            return result.model_copy(update={
                "latency_s": time.monotonic() - started,
                "attempts": attempts,
                "warnings": [*warnings, *result.warnings],
            })
        raise AllProvidersFailedError(
            f"every provider of route {plan.name!r} failed: "
            + "; ".join(f"{a.provider}: {a.error_type}" for a in attempts),
            attempts=attempts)

    async def _run_cached(self, provider: Provider, spec: ModelSpec, request: ImageRequest, deadline: float,
                          attempts: list[Attempt]) -> ImageResult:
        """Serve from the cache, share an identical call already running, or call the provider."""
        name = provider.instance_name
        cache = self.cache
        if cache is None or not request.cache or {name, f"{name}/{spec.id}"} & set(self.config.cache.bypass):
            self._check_circuit(name)
            return await self._run_on(provider, spec, request, deadline, attempts)
        key = cache_key(request, provider=name, model=spec.id)
        hit = await asyncio.to_thread(cache.get, key)
        if hit is None:
            self._check_circuit(name)
            result, shared = await self._coalescer.run(
                key, lambda: self._run_on(provider, spec, request, deadline, attempts))
            if not shared:
                await asyncio.to_thread(cache.put, key, result)
                return result
            hit = result.model_copy(update={"cached": True, "cost": Cost(usd=0.0, credits=0.0, estimated=False)})
        if self.ledger is not None:
            self.ledger.record(provider=name, model=spec.id, usd=0.0, credits=0.0, job_id=hit.job_id,
                               cached=True, estimated=False)
        return hit

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
        parts = [request.model_copy(update={"n": k, "idempotency_key": f"{request.idempotency_key}.{i}"
                                            if i else request.idempotency_key})
                 for i, k in enumerate(counts)]
        results = await asyncio.gather(*(self._call_with_retries(provider, spec, p, deadline, attempts)
                                         for p in parts))
        first = results[0]
        if len(results) == 1:
            return first
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

        def on_retry(record: RetryRecord) -> None:
            attempts.append(_failed_attempt(Target(name, spec.id), record.error, record.duration_s,
                                            wait_s=record.wait_s))

        async def once() -> ImageResult:
            try:
                async with self.limiter.slot(name, requests_per_minute=provider.settings.requests_per_minute,
                                             max_concurrency=provider.settings.max_concurrency,
                                             deadline=deadline):
                    result = await self._call(provider, spec, request, deadline)
            except ImageGenError as exc:
                self.circuits.record_failure(name, exc)
                if isinstance(exc, RateLimitError) and exc.retry_after:
                    self.limiter.pause(name, exc.retry_after)
                raise
            self.circuits.record_success(name)
            return result

        return await call_with_retries(once, config=self.config.retry, deadline=deadline, on_retry=on_retry)

    async def _resume(self, provider: Provider, request: ImageRequest, deadline: float) -> ImageResult | None:
        """Finish a job already submitted for this logical request instead of paying for it twice."""
        existing = self.jobs.find(request.idempotency_key) if request.idempotency_key else None
        if existing is None or existing.provider != provider.instance_name:
            return None
        if existing.status == "succeeded" and existing.result is not None:
            return existing.result
        if existing.status in ("queued", "running"):
            return await self._guard(provider, provider.wait(existing, deadline=deadline))
        return None  # failed or cancelled: a fresh submission is what the caller wants

    async def _call(self, provider: Provider, spec: ModelSpec, request: ImageRequest,
                    deadline: float) -> ImageResult:
        estimate = provider.estimate(request, spec)

        def on_submit(job: Job) -> None:
            self.jobs.put(job.model_copy(update={"request": request, "model": spec.id}))

        reservation = self._reserve(provider, spec, estimate)
        try:
            result = await self._resume(provider, request, deadline)
            if result is None:
                method = provider.edit if request.operation == "edit" else provider.generate
                result = await self._guard(provider, method(request, spec, deadline=deadline, on_submit=on_submit))
        except BaseException:
            if reservation is not None:
                self.ledger.release(reservation)  # type: ignore[union-attr]
            raise
        if result.job_id:
            done = provider.job(split_job_id(result.job_id)[1], "succeeded", result=result)
            self._remember(done, self.jobs.get(result.job_id))
        cost = result.cost if not result.cost.estimated else estimate
        self._settle(provider, spec, reservation, cost, result.job_id)
        return result.model_copy(update={"provider": provider.instance_name, "model": spec.id, "cost": cost})

    def _reserve(self, provider: Provider, spec: ModelSpec, estimate: Cost) -> str | None:
        """Hold the estimate against the budgets before any network call (raises BudgetExceededError)."""
        if self.ledger is None or not self._limits.windows(time.time()):
            return None
        return self.ledger.reserve(provider=provider.instance_name, model=spec.id, usd=estimate.usd or 0.0,
                                   limits=self._limits)

    def _settle(self, provider: Provider, spec: ModelSpec, reservation: str | None, cost: Cost,
                job_id: str | None) -> None:
        if self.ledger is None:
            return
        charge = {"usd": cost.usd or 0.0, "credits": cost.credits, "job_id": job_id, "cached": False,
                  "estimated": cost.estimated}
        if reservation is not None:
            self.ledger.settle(reservation, **charge)
        else:
            self.ledger.record(provider=provider.instance_name, model=spec.id, **charge)


def _failed_attempt(target: Target, exc: ImageGenError, duration: float, *, wait_s: float = 0.0) -> Attempt:
    return Attempt(
        provider=target.provider,
        model=target.model,
        outcome="skipped" if isinstance(exc, (InvalidRequestError, ConfigurationError)) else "failed",
        error_type=type(exc).__name__,
        error=exc.message,
        status_code=getattr(exc, "status_code", None),
        retryable=exc.retryable,
        retry_after=getattr(exc, "retry_after", None),
        wait_s=wait_s,
        duration_s=duration,
    )
