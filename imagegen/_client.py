"""``AsyncClient``: the one implementation of generate, edit, submit, status, wait,
cancel and estimate. ``Client`` (in ``_sync``) is a thin facade over it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

import httpx
from pydantic import ValidationError

from ._answers import watch_answer
from ._cache import Coalescer
from ._capabilities import ModelSpec
from ._charges import AFTER_PAYMENT_WAIT_S, answer_lost_again
from ._claims import held_claim
from ._config import Config, config_from_mapping, load_config, resolve_secret
from ._errors import (
    ConfigurationError,
    ImageGenError,
    InvalidRequestError,
    JobNotFoundError,
    StorageError,
    UnknownProviderError,
)
from ._gc import freeze_startup_objects
from ._http import call_scope, guarded_transport, keep_cookies_cheaply
from ._jobstore import JobStore
from ._journal import journal_for
from ._ledger import BudgetLimits, Ledger, RedisLedger
from ._models import Cost, ImageRequest, ImageResult, Job, split_job_id
from ._options import ImageInput, ImageOptions, RequestOptions
from ._pipeline import DEFAULT_CALL_TIMEOUT_S, CallPipeline
from ._plugins import PluginRegistry
from ._plugins import registry as default_registry
from ._provider import Provider
from ._ratelimit import DEFAULT_MAX_CONCURRENCY
from ._resilience import CircuitBreaker
from ._routing import Plan, Target, resolve
from ._services import (
    is_loopback_url,
    link_image_files,
    make_cache,
    make_job_store,
    make_ledger,
    make_limiter,
    points_at_emulators,
)
from ._sqlite import waits_until
from ._storage import CacheGuard, guarded
from ._vendor_batch_calls import VendorBatchCalls
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from ._sessions import AsyncSession
    from ._streaming import PartialImage
    from .fleet import AsyncFleet

__all__ = ["AsyncClient"]

log = logging.getLogger("imagegen")


class AsyncClient(VendorBatchCalls, CallPipeline):
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
        #: Every configured provider points at a local emulator: stores kept apart (see ``_services``).
        self.emulated = points_at_emulators(self.config)
        self.jobs = guarded(job_store, "job store") if job_store is not None else make_job_store(self.config)
        self._transports = dict(transports or {})
        self._instances: dict[str, Provider] = {}
        self._http: list[httpx.AsyncClient] = []
        self.circuits = CircuitBreaker(self.config.circuit)
        self.limiter = make_limiter(self.config)
        self.cache: CacheGuard | None = make_cache(self.config)
        self.ledger: Ledger | RedisLedger | None = make_ledger(self.config)
        #: Where charges the ledger cannot take go until it can (``imagegen._journal``).
        self.journal = journal_for(self.ledger) if self.ledger is not None else None
        link_image_files(self.jobs, self.cache)
        #: Stores this client made (an injected job store is its owner's to close).
        self._own_stores = [s for s in (None if job_store else self.jobs, self.cache, self.ledger) if s is not None]
        self._coalescer = Coalescer(spawn=self._in_background)
        self._job_writes: dict[str, asyncio.Future[Any]] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._cache_writes: dict[str, ImageResult] = {}
        self._fresh_keys: set[str] = set()
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
            if self.emulated and not is_loopback_url(settings.base_url or cls.default_base_url):
                raise ConfigurationError(
                    f"{name!r} would reach a real service, but every configured provider of this client points "
                    f"at an emulator, so its records are kept apart from real ones (see imagegen._services); "
                    f"configure providers.{name} with an emulator's base_url, or use a config for real calls")
            # As many connections as calls may be in flight (the limiter queues the rest), and all
            # of them kept alive: a connection closed after each call costs a handshake the next.
            concurrency = settings.max_concurrency or DEFAULT_MAX_CONCURRENCY
            limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
            http = keep_cookies_cheaply(httpx.AsyncClient(
                timeout=settings.timeout or cls.default_timeout,
                # Limits and TLS live in the transport: given one, httpx mounts no proxy from the env.
                transport=self._transports.get(name) or guarded_transport(limits),
                headers={"User-Agent": f"imagegen/{__version__}"},
                event_hooks={"response": [watch_answer]},  # a 2xx to a billed call is paid (_answers)
            ))
            # An unused httpx client holds no connections, so a failing constructor leaks nothing.
            self._instances[name] = cls(instance_name=name, settings=settings, http=http)
            self._http.append(http)
            freeze_startup_objects()
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

    async def generate(self, prompt: str | ImageRequest, **options: Unpack[RequestOptions]) -> ImageResult:
        """Generate images from a prompt (or run a prepared ``ImageRequest``)."""
        request = prompt if isinstance(prompt, ImageRequest) else ImageRequest.build(prompt=prompt, **options)
        return await self._run(request)

    async def edit(self, prompt: str, *, images: ImageInput | Sequence[ImageInput], mask: ImageInput | None = None,
                   **options: Unpack[ImageOptions]) -> ImageResult:
        """Edit or combine ``images`` (bytes, paths, URLs or Images) as the prompt says."""
        request = ImageRequest.build(prompt=prompt, operation="edit", images=images, mask=mask, **options)
        return await self._run(request)

    def stream(self, prompt: str | ImageRequest, *, partial_images: int = 2,
               **options: Unpack[RequestOptions]) -> AsyncGenerator[PartialImage | ImageResult, None]:
        """Generate (or, with ``images=``, edit), yielding previews as they arrive, then the result.

        Yields up to ``partial_images`` (1-3) ``PartialImage`` objects, then the final
        ``ImageResult``, which goes through the route, cache, budget, job store and ledger like
        any ``generate``. Providers that cannot stream (or a cache hit) yield the result alone.
        """
        from ._streaming import stream_results  # not at import: a client made to estimate or generate needs none of it

        if isinstance(prompt, ImageRequest):
            request = prompt
        else:
            operation = "edit" if options.get("images") else "generate"
            request = ImageRequest.build(prompt=prompt, operation=operation, **options)
        return stream_results(lambda: self._run(request), partial_images, self._in_background)

    async def generate_many(self, requests: Iterable[ImageRequest | str], *, concurrency: int = 4,
                            on_result: Callable[[int, ImageResult | ImageGenError], None] | None = None,
                            **options: Unpack[RequestOptions]) -> list[ImageResult | ImageGenError]:
        """Run many requests, at most ``concurrency`` at a time.

        Each item is a prompt or an ``ImageRequest``; ``options`` (``provider=``, ``size=``, ...)
        apply to the prompts, as ``generate(prompt, **options)`` would (a prepared request is
        run as it is). A failure does not stop the batch: its slot in the returned list (in
        input order) holds the error. ``on_result(index, outcome)`` is called as each one finishes.
        """
        if concurrency < 1:
            raise InvalidRequestError(f"concurrency must be at least 1, not {concurrency}")
        items = list(requests)
        outcomes: list[ImageResult | ImageGenError | None] = [None] * len(items)
        queue = iter(enumerate(items))

        async def worker() -> None:
            # ``concurrency`` workers take the items in order: that many tasks, not one per item
            # queued on a semaphore (each of whose acquires walks the tasks still waiting).
            for index, item in queue:
                try:
                    request = item if isinstance(item, ImageRequest) else ImageRequest.build(prompt=item, **options)
                    outcome: ImageResult | ImageGenError = await self._run(request)
                except ImageGenError as exc:
                    outcome = exc
                outcomes[index] = outcome
                if on_result is not None:
                    on_result(index, outcome)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(items)))))
        return outcomes  # type: ignore[return-value]

    async def estimate_many(self, requests: Iterable[ImageRequest | str], **options: Unpack[RequestOptions]) -> Cost:
        """Expected cost of a whole batch; ``breakdown`` holds USD per provider/model.

        ``options`` apply to the prompts among ``requests``, as in ``generate_many``."""
        total = Cost(usd=0.0, estimated=True)
        for item in requests:
            request = item if isinstance(item, ImageRequest) else ImageRequest.build(prompt=item, **options)
            cost = await self.estimate(request)
            target = self._plan(request).targets[0]
            model = request.model or target.model or self.provider(target.provider).model_spec().id
            total = total + cost.model_copy(update={"breakdown": {f"{target.provider}/{model}": cost.usd or 0.0}})
        return total

    async def estimate(self, request: ImageRequest | str, **options: Unpack[RequestOptions]) -> Cost:
        """Expected cost of ``request`` on its first provider, from the price book. No network call."""
        if isinstance(request, str):
            request = ImageRequest.build(prompt=request, **options)
        target = self._plan(request).targets[0]
        provider = self.provider(target.provider)
        spec = self._model(provider, target, request)
        provider.validate(request, spec)
        return provider.estimate(request, spec)

    async def submit(self, request: ImageRequest | str, **options: Unpack[RequestOptions]) -> Job:
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
        deadline = time.monotonic() + (request.timeout or DEFAULT_CALL_TIMEOUT_S)
        with waits_until(deadline):
            return await self._submit_once(provider, spec, request, deadline)

    async def _submit_once(self, provider: Provider, spec: ModelSpec, request: ImageRequest, deadline: float) -> Job:
        if request.idempotency_key is None:
            # A key of its own all the same: it is half of the charge's identity in the ledger.
            request = request.model_copy(update={"idempotency_key": uuid.uuid4().hex})
            return await self._submit(provider, spec, request, deadline)
        async with held_claim(self.jobs, request, deadline) as stored:
            # The same request submitted before (from any process sharing the job store) is
            # that job, not a new one to pay for.
            earlier = self.jobs.find(request.idempotency_key)
            if earlier is not None and earlier.status not in ("failed", "cancelled"):
                stored.append(earlier.id)
                return earlier
            job = await self._submit(provider, spec, request, deadline)
            stored.append(job.id)
            return job

    async def _submit(self, provider: Provider, spec: ModelSpec, request: ImageRequest, deadline: float) -> Job:
        """Submit through the charge lifecycle: reserved, and stored and charged once accepted."""
        money = self._money(provider, spec, request)
        await self._hold_budget(money, deadline)
        with call_scope(self._paid_scope(money, deadline)):
            try:
                limits = provider.rate_limits()  # a submit is a call: the provider's declared limits hold
                async with self.limiter.slot(provider.instance_name, requests_per_minute=limits.calls_per_minute,
                                             max_concurrency=limits.max_concurrency, deadline=deadline):
                    job = await self._guard(provider, provider.submit(request, spec))
            except BaseException as exc:
                recovered = await self._recovering(money, exc, deadline)
                job = money.accepted[recovered.job_id or ""].model_copy(update={"result": recovered})
            self._accept(money, job)
            if job.status == "succeeded" and job.result is not None:  # a synchronous API: finished already
                result = await self._succeeded(money, job.result, deadline)
                return money.accepted[job.id].model_copy(update={"result": result})
            await self._flush(money)  # the job and its charge on record before submit() returns
        job = money.accepted[job.id]
        if money.warnings:
            job = job.model_copy(update={"metadata": {**job.metadata, "warnings": list(money.warnings)}})
        return job

    async def status(self, job_id: str) -> Job:
        """Where a job stands: from the job store when it is over, else from its provider.

        A job seen finishing here is settled like any other: its images fully decoded, its
        charge (recorded when it was submitted, or now) set to the reported cost, and the job
        stored with its result.
        """
        name, native_id = split_job_id(job_id)
        await self._landed(job_id)  # a job finished a moment ago may still be on its way in
        stored = self._stored(job_id)
        if self._batch_of(stored) is not None:  # a vendor batch, or one of its members
            return await self._batch_status(stored)  # type: ignore[arg-type]
        if stored is not None and stored.done:
            return stored
        provider = self._provider_of(name, job_id)
        spec = self._model(provider, Target(name, stored.model if stored else None), _request_of(stored))
        job = await self._guard(provider, provider.status(native_id))
        job = job.model_copy(update={"request": stored.request if stored else None,
                                     "created_at": stored.created_at if stored else job.created_at,
                                     "model": job.model or (stored.model if stored else None)})
        if job.status == "succeeded" and job.result is not None:
            result = await self._finish_job(provider, spec, job, time.monotonic() + DEFAULT_CALL_TIMEOUT_S)
            return job.model_copy(update={"result": result})
        if job.status in ("failed", "cancelled"):  # not billed: a charge recorded at submit is voided
            money = self._money(provider, spec, _request_of(job))
            self._void(money, job.id)
            await self._flush(money)
        try:
            return await self._remember(job, stored)
        except StorageError as exc:  # the vendor's answer stands; the store just could not keep it
            return job.model_copy(update={"metadata": {**job.metadata, "warnings": [exc.message]}})

    async def wait(self, job_id: str, timeout: float = 120.0) -> ImageResult:
        """Wait for a job to finish and return its result (raises if it failed or times out).

        Never pays: a finished job whose outputs could not be fetched before is fetched again.
        A vendor batch's id gives a `BatchResult` (every member's outcome); a member's id, that
        member's result (or its error, raised)."""
        deadline = time.monotonic() + timeout
        name, native_id = split_job_id(job_id)
        await self._landed(job_id, 0.25 * timeout)
        stored = self._stored(job_id)
        if self._batch_of(stored) is not None:
            return await self._batch_wait(stored, timeout)  # type: ignore[arg-type]
        if stored is not None and stored.status == "succeeded" and stored.result is not None:
            return stored.result
        provider = self._provider_of(name, job_id)
        job = stored or provider.job(native_id, "running")
        if job.done and job.status != "succeeded":
            if job.metadata.get("answer_lost"):  # billed, and nothing to fetch: the call's own error
                raise answer_lost_again(job)
            provider.result_of(job)  # raises what the job ended in
        spec = self._model(provider, Target(name, job.model), _request_of(job))
        with waits_until(deadline):
            return await self._finish_job(provider, spec, job, deadline)

    async def _landed(self, job_id: str, within: float = AFTER_PAYMENT_WAIT_S) -> None:
        """Wait (briefly) for this process's write of ``job_id`` that may still be on its way in."""
        pending = self._job_writes.get(job_id)
        if pending is not None:
            await asyncio.wait([pending], timeout=min(within, AFTER_PAYMENT_WAIT_S))

    def _stored(self, job_id: str) -> Job | None:
        """The job store's record of a job; a store that cannot be read counts as not knowing it
        (the job id names its provider, which is asked instead)."""
        try:
            return self.jobs.get(job_id)
        except StorageError as exc:
            log.warning("imagegen: %s; asking the provider about job %s instead", exc.message, job_id)
            return None

    def _provider_of(self, name: str, job_id: str) -> Provider:
        try:
            return self.provider(name)
        except UnknownProviderError:
            raise JobNotFoundError(f"job {job_id!r}: no provider {name!r} is configured") from None

    async def cancel(self, job_id: str) -> Job:
        """Ask the provider to cancel a job (providers that cannot raise UnsupportedFeatureError)."""
        stored = self.jobs.get(job_id)
        if self._batch_of(stored) is not None:
            return await self._batch_cancel(stored)  # type: ignore[arg-type]
        name, native_id = split_job_id(job_id)
        provider = self.provider(name)
        job = await self._guard(provider, provider.cancel(native_id))
        return await self._remember(job, self.jobs.get(job_id))

    def session(self, provider: str | None = None, *, id: str | None = None) -> AsyncSession:
        """An edit session: turns that build on each other ("now make the roof blue"), kept in the
        job store; ``id`` resumes a stored session, from any process (see ``_sessions``)."""
        from ._sessions import load_session, new_session

        return load_session(self, id) if id is not None else new_session(self, provider)

    def providers(self) -> dict[str, type[Provider]]:
        """Installed provider plugins by name."""
        return self.registry.providers()

    def fleet(self, url: str | None = None) -> AsyncFleet:
        """A handle on the fleet of workers sharing the Redis at ``url`` (see ``imagegen.fleet``)."""
        from .fleet import AsyncFleet

        return AsyncFleet(self, url)

    async def flush(self) -> None:
        """Wait until background writes (results going into the cache) have landed."""
        await self._drain_background()

    async def aclose(self) -> None:
        """Wait for background writes, then close every provider and HTTP client."""
        await self._drain_background()
        for provider in self._instances.values():
            await provider.aclose()
        for http in self._http:
            await http.aclose()
        await self.limiter.aclose()
        for store in self._own_stores:  # their writer threads: commit what is queued, stop
            close = getattr(store, "close", None)
            if close is not None:
                close()
        self._instances.clear()
        self._http.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _request_of(job: Job | None) -> ImageRequest:
    """The request a job was made for (a stand-in when the job store never saw it)."""
    if job is not None and job.request is not None:
        return job.request
    return ImageRequest(prompt="a request this job store never saw")
