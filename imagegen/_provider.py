"""The provider contract every plugin implements.

A provider declares its name, models (capabilities and prices as data), settings
and, optionally, an emulator. It implements the async ``submit`` and ``status``
(and optionally ``cancel``); ``generate`` and ``edit`` default to submit-then-poll
on ``poll_schedule`` with a deadline, and a synchronous API overrides them.
Every vendor, transport and parsing exception passes through ``translate_error``,
the one place where it becomes part of the imagegen tree.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from ._capabilities import ModelSpec, check_request
from ._errors import (
    ImageGenError,
    InvalidResponseError,
    JobFailedError,
    JobTimeoutError,
    MissingCredentialsError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnknownProviderError,
    UnsupportedFeatureError,
)
from ._http import DownloadPolicy
from ._models import Cost, ImageRequest, ImageResult, Job, JobStatus, make_job_id

__all__ = ["AdaptivePollSchedule", "OnSubmit", "PollSchedule", "Provider", "ProviderSettings"]

OnSubmit = Callable[[Job], None]


class ProviderSettings(BaseModel):
    """Settings every configured provider accepts; plugins subclass to add their own.

    Unknown keys are errors, so a typo in the config never goes unnoticed.
    """

    model_config = ConfigDict(extra="forbid")

    plugin: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    #: Seconds for one HTTP request; None: the provider's default.
    timeout: float | None = None
    max_concurrency: int | None = None
    requests_per_minute: float | None = None


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


class Provider:
    """Base class of provider plugins. Subclasses set the class attributes and implement I/O."""

    #: Plugin name, used in config (``plugin = "..."``) and as the default instance name.
    name: ClassVar[str]
    display_name: ClassVar[str] = ""
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: Environment variables consulted, in order, when no ``api_key`` is configured.
    api_key_env: ClassVar[tuple[str, ...]] = ()
    requires_api_key: ClassVar[bool] = True
    default_base_url: ClassVar[str] = ""
    #: Seconds for one HTTP request when the settings give none.
    default_timeout: ClassVar[float] = 60.0
    poll_schedule: ClassVar[PollSchedule | AdaptivePollSchedule] = PollSchedule()
    #: Failed status polls in a row (429, 5xx, broken answers) that ``wait`` rides out.
    max_poll_errors: ClassVar[int] = 8
    #: True for a synchronous API that bills a 2xx answer even when its body cannot be read
    #: (there is no job to fetch again): the ledger then records the estimate as spent.
    bills_unreadable_answers: ClassVar[bool] = False
    #: ``"module:factory"`` returning an ``imagegen.testing.Emulator`` for ``imagegen emulate``.
    emulator: ClassVar[str | None] = None

    def __init__(self, *, instance_name: str, settings: ProviderSettings, http: httpx.AsyncClient) -> None:
        self.instance_name = instance_name
        self.settings = settings
        self.http = http
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")
        self.api_key = self._resolve_api_key()

    # -- data ---------------------------------------------------------------------------

    @classmethod
    def models(cls) -> list[ModelSpec]:
        """The provider's models, from its data file. Subclasses override."""
        raise NotImplementedError

    @classmethod
    def default_model(cls) -> str:
        return cls.models()[0].id

    def model_spec(self, model: str | None = None) -> ModelSpec:
        wanted = model or self.settings.model or self.default_model()
        for spec in self.models():
            if wanted in spec.names:
                return spec
        known = ", ".join(s.id for s in self.models())
        raise UnknownProviderError(f"{self.instance_name} has no model {wanted!r}; known models: {known}")

    # -- before any network call ---------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        """Raise if this provider cannot serve ``request``; return warnings. Extend, don't replace."""
        return check_request(request, spec, provider=self.instance_name)

    def estimate(self, request: ImageRequest, spec: ModelSpec) -> Cost:
        """Expected cost from the price book; no network. Providers with richer prices override."""
        price = spec.price
        if price is None:
            return Cost(estimated=True)
        size = spec.effective_size(request)
        usd = price.image_usd(size)
        credits = price.for_size(price.credits_per_image, size)
        return Cost(
            usd=None if usd is None else round(usd * request.n, 9),
            credits=None if credits is None else credits * request.n,
            estimated=True,
        )

    def download_policy(self) -> DownloadPolicy:
        """Output downloads may come from the configured base URL's host (an emulator, a proxy)."""
        hosts = {urlsplit(self.base_url).hostname or ""} if self.settings.base_url else set()
        return DownloadPolicy(allow_hosts=frozenset(h.lower() for h in hosts if h))

    # -- I/O: subclasses implement ---------------------------------------------------------

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        """Start the work and return its Job at once (or finished, for synchronous APIs)."""
        raise NotImplementedError

    async def status(self, native_id: str) -> Job:
        """Ask the provider where a job stands."""
        raise NotImplementedError

    async def cancel(self, native_id: str) -> Job:
        raise UnsupportedFeatureError(f"{self.instance_name} cannot cancel jobs")

    async def generate(self, request: ImageRequest, spec: ModelSpec, *, deadline: float,
                       on_submit: OnSubmit | None = None) -> ImageResult:
        """Submit, then poll until done or ``deadline`` (a ``time.monotonic()`` value).

        ``on_submit`` is called with the Job as soon as the provider has accepted it, so
        the caller can record it before waiting (a crash mid-wait loses nothing).
        """
        job = await self.submit(request, spec)
        if on_submit is not None:
            on_submit(job)
        return await self.wait(job, deadline=deadline)

    async def edit(self, request: ImageRequest, spec: ModelSpec, *, deadline: float,
                   on_submit: OnSubmit | None = None) -> ImageResult:
        return await self.generate(request, spec, deadline=deadline, on_submit=on_submit)

    async def wait(self, job: Job, *, deadline: float) -> ImageResult:
        """Poll ``job`` on ``poll_schedule`` until it ends; raise on failure or at the deadline.

        A poll that fails with a retryable error (429, 5xx, a dropped or unreadable answer)
        is polled again, after the server's wait hint if it gave one: the job is already
        paid for and polls are free, whereas giving up here would send the caller's router
        to submit (and pay) again. ``max_poll_errors`` failures in a row end the wait.
        """
        delays = self.poll_schedule.delays()
        errors = 0
        wait_hint: float | None = None
        while not job.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeoutError(
                    f"job {job.id} did not finish in time; it may still finish: "
                    f"call status({job.id!r}) or wait({job.id!r}) later",
                    provider=self.instance_name, job_id=job.id)
            delay = next(delays) if wait_hint is None else wait_hint
            await asyncio.sleep(min(delay, remaining))
            try:
                job = await self.status(job.native_id)
            except ProviderError as exc:
                errors += 1
                if not exc.retryable or errors >= self.max_poll_errors:
                    raise
                wait_hint = getattr(exc, "retry_after", None)
                continue
            errors, wait_hint = 0, None
        return self.result_of(job)

    def result_of(self, job: Job) -> ImageResult:
        if job.status == "succeeded" and job.result is not None:
            return job.result
        detail = (job.error or {}).get("message") or job.status
        raise JobFailedError(f"{self.instance_name} job {job.id} {job.status}: {detail}",
                             provider=self.instance_name)

    def job(self, native_id: str, status: JobStatus, **fields: Any) -> Job:
        """Build a Job with an id that routes back to this provider instance."""
        return Job(id=make_job_id(self.instance_name, native_id), provider=self.instance_name,
                   native_id=native_id, status=status, **fields)

    # -- the one error-translation point ---------------------------------------------------

    def translate_error(self, exc: BaseException) -> ImageGenError:
        """Map any exception to the imagegen tree. Subclasses handle vendor errors, then call super."""
        name = self.instance_name
        if isinstance(exc, ImageGenError):
            return exc
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeoutError(f"{name} did not answer in time ({type(exc).__name__})", provider=name)
        if isinstance(exc, (httpx.TransportError, ConnectionError)):
            return ProviderUnavailableError(f"{name} could not be reached ({type(exc).__name__})", provider=name)
        if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError,
                            ValueError, AttributeError)):
            return InvalidResponseError(
                f"{name} answered something imagegen cannot read ({type(exc).__name__}: {exc})", provider=name)
        if isinstance(exc, asyncio.TimeoutError):
            return ProviderTimeoutError(f"{name} did not answer in time", provider=name)
        return ProviderError(f"{name} failed: {type(exc).__name__}: {exc}", provider=name)

    # -- lifecycle ----------------------------------------------------------------------

    def _resolve_api_key(self) -> SecretStr | None:
        if self.settings.api_key is not None:
            return self.settings.api_key
        import os

        for var in self.api_key_env:
            if os.environ.get(var):
                return SecretStr(os.environ[var])
        if self.requires_api_key:
            names = " or ".join(self.api_key_env) or "an API key"
            raise MissingCredentialsError(
                f"provider {self.instance_name!r} needs an API key: set {names}, or set "
                f"api_key = \"env:YOUR_VAR\" under [providers.{self.instance_name}] in the config"
            )
        return None

    async def aclose(self) -> None:
        """Release provider-owned resources (the shared httpx client is closed by the caller)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.instance_name!r} base_url={self.base_url!r}>"
