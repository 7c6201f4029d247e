"""The provider contract every plugin implements, and the kit it is written with.

A provider declares its name, models (capabilities and prices as data, in ``models_file``),
settings, status-to-error table and, optionally, an emulator. It implements the async
``submit`` and ``status`` (and optionally ``cancel``); ``generate`` and ``edit`` default to
submit-then-poll on the poll schedule with a deadline, and a synchronous API overrides them.
A finished job's output URLs are downloaded with ``download_outputs``, which tells the core
of the billed job first (the core polls again, never submits again, if a download fails).
Vendor answers are read inside ``parsing()``; error answers go through ``status_error``; SDK
and transport exceptions through ``translate_error``. Anything else is a bug, and propagates.
HTTP APIs start from ``HTTPProvider`` (``imagegen.provider``), which sends requests too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from ._capabilities import ModelSpec, check_request, load_models
from ._errors import (
    ImageGenError,
    InvalidImageError,
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
from ._http import DownloadPolicy, fetch_image
from ._models import Cost, Image, ImageRequest, ImageResult, Job, JobStatus, make_job_id
from ._outputs import fetch_outputs
from ._polling import PollSchedule, Schedule
from ._status import ErrorDetails, ErrorReply, StatusRule, build_status_error, read_error_body

__all__ = ["OnSubmit", "Provider", "ProviderSettings", "RateLimits", "parsing"]

OnSubmit = Callable[[Job], None]


@contextmanager
def parsing(provider: str, what: str = "answer", *, status_code: int | None = None) -> Iterator[None]:
    """Read a vendor's answer inside this block: it is the one source of ``InvalidResponseError``.

    A ``KeyError``, ``IndexError``, ``TypeError``, ``ValueError`` (JSON, Unicode and pydantic
    validation errors included) or ``AttributeError`` raised inside means the answer was not
    what the code expects: it becomes a retryable ``InvalidResponseError`` naming ``what`` was
    being read, raised from the original. ``ImageGenError`` passes through; anything else is
    a bug and propagates. Keep the block to the reading: outside it, the same exceptions are
    bugs in the provider, not vendor flakiness.
    """
    try:
        yield
    except ImageGenError:
        raise
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidResponseError(
            f"{provider} answered something imagegen cannot read ({what}: {type(exc).__name__}: {exc})",
            provider=provider, status_code=status_code) from exc


class ProviderSettings(BaseModel):
    """Settings every configured provider accepts; plugins subclass to add their own.

    Unknown keys are errors, so a typo in the config never goes unnoticed.
    """

    model_config = ConfigDict(defer_build=True, extra="forbid")

    plugin: str | None = None
    model: str | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    #: Seconds for one HTTP request; None: the provider's default.
    timeout: float | None = None
    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    #: Replaces the provider's ``poll_schedule``: ``[initial, factor, cap]`` seconds, or a table.
    poll_schedule: PollSchedule | None = None

    @field_validator("poll_schedule", mode="before")
    @classmethod
    def _schedule_from_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) != 3:
                raise ValueError("poll_schedule is [initial, factor, cap], in seconds")
            return PollSchedule(*(float(v) for v in value))
        return value


@dataclass(frozen=True)
class RateLimits:
    """Client-side limits the core enforces for one provider instance (``Provider.rate_limits``).

    ``calls_per_minute`` counts calls started (each submission to the provider) in a sliding
    minute, in this process or, with ``[rate_limits] backend = "redis"``, across every process
    sharing that Redis; ``max_concurrency`` caps calls in flight in this process.
    """

    calls_per_minute: float | None = None
    max_concurrency: int | None = None


#: Each provider class's models, read from its ``models_file`` once per process.
_MODELS: dict[type[Provider], tuple[ModelSpec, ...]] = {}


def _models_of(cls: type[Provider], file: str) -> tuple[ModelSpec, ...]:
    if cls not in _MODELS:
        package = sys.modules[cls.__module__].__package__ or cls.__module__
        _MODELS[cls] = tuple(load_models(resources.files(package).joinpath(file), prepare=cls.prepare_model))
    return _MODELS[cls]


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
    #: The model data file next to the provider's module (TOML ``[[models]]`` or JSON), read by
    #: ``models()`` once per process; each entry passes through ``prepare_model`` first.
    models_file: ClassVar[str | None] = None
    #: How ``wait`` polls: the provider's default here; an instance takes the settings'
    #: ``poll_schedule`` instead when one is configured.
    poll_schedule: Schedule = PollSchedule()
    #: Failed status polls in a row (429, 5xx, broken answers) that ``wait`` rides out.
    max_poll_errors: ClassVar[int] = 8
    #: HTTP status -> error class and advice, over ``imagegen.provider.DEFAULT_STATUS_ERRORS``.
    status_errors: ClassVar[Mapping[int, StatusRule]] = {}
    #: The response header carrying the vendor's request id (kept on every error).
    request_id_header: ClassVar[str] = "x-request-id"
    #: Whether a billed call answered 2xx counts as paid even when its answer is then lost (cut
    #: mid-body, timed out, unreadable): the core records the estimate, never sends the call
    #: again and raises ``AnswerLostError`` (``imagegen._answers``). True unless resending is
    #: free: set it False only for a vendor whose billed calls carry an idempotency key.
    bills_unreadable_answers: ClassVar[bool] = True
    #: ``"module:factory"`` returning an ``imagegen.testing.Emulator`` for ``imagegen emulate``.
    emulator: ClassVar[str | None] = None

    def __init__(self, *, instance_name: str, settings: ProviderSettings, http: httpx.AsyncClient) -> None:
        self.instance_name = instance_name
        self.settings = settings
        self.http = http
        self.base_url = (settings.base_url or self.default_base_url).rstrip("/")
        self.api_key = self._resolve_api_key()
        if settings.poll_schedule is not None:
            self.poll_schedule = settings.poll_schedule

    # -- data ---------------------------------------------------------------------------

    @classmethod
    def models(cls) -> list[ModelSpec]:
        """The provider's models, from ``models_file`` (override to build them otherwise)."""
        if cls.models_file is None:
            raise NotImplementedError(f"{cls.__name__} sets no models_file and does not override models()")
        return list(_models_of(cls, cls.models_file))

    @classmethod
    def prepare_model(cls, entry: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        """One ``[[models]]`` entry of ``models_file`` before validation; ``document`` is the whole
        file. Override to derive fields from shared tables (pixel tables, node prices)."""
        return entry

    @classmethod
    def default_model(cls) -> str:
        """The model flagged ``default = true`` in the model data, else the first one."""
        specs = cls.models()
        return next((s.id for s in specs if s.extra.get("default")), specs[0].id)

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

    def rate_limits(self) -> RateLimits:
        """The limits the core enforces on calls to this instance: the settings' by default.
        A provider whose vendor caps calls (per plan, per account) declares that cap here."""
        return RateLimits(self.settings.requests_per_minute, self.settings.max_concurrency)

    def download_policy(self) -> DownloadPolicy:
        """Output downloads may come from the configured base URL's host (an emulator, a proxy)."""
        hosts = {urlsplit(self.base_url).hostname or ""} if self.settings.base_url else set()
        return DownloadPolicy(allow_hosts=frozenset(h.lower() for h in hosts if h))

    # -- I/O: subclasses implement ---------------------------------------------------------

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        """Start the work and return its Job at once (or finished, for synchronous APIs)."""
        raise NotImplementedError

    async def status(self, native_id: str) -> Job:
        """Ask the provider where a job stands (a finished job with its result, outputs downloaded)."""
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

    # -- the job lifecycle, shared by every provider ---------------------------------------

    async def wait(self, job: Job, *, deadline: float) -> ImageResult:
        """Poll ``job`` until it ends and return its result; raise on failure or at the deadline.

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
                wait_hint = exc.retry_after
                continue
            errors, wait_hint = 0, None
        return self.result_of(job)

    async def download_outputs(self, native_id: str, urls: Sequence[str]) -> list[Image]:
        """Download a finished job's output images, from ``status`` (or ``submit``, for a job that
        is done at once): the core hears of the billed job before the first byte, transient
        failures are tried again, and what still fails is ``OutputUnavailableError`` with the
        job id and URLs, so the core polls again rather than submitting (and paying) again.
        Size, time, redirect, address, type and decode checks apply (``download_policy``)."""
        return await fetch_outputs(self.http, list(urls), provider=self.instance_name,
                                   job_id=self.job_id(native_id), policy=self.download_policy())

    async def download(self, urls: Sequence[str]) -> list[Image]:
        """Fetch images that are not a job's outputs (input images given by URL) under the policy."""
        policy = self.download_policy()
        return list(await asyncio.gather(*(fetch_image(self.http, url, provider=self.instance_name, policy=policy)
                                           for url in urls)))

    async def input_images(self, request: ImageRequest) -> list[tuple[bytes, str]]:
        """Each reference image's bytes and MIME type, for an API that takes bytes only: URLs are
        downloaded under the policy. A URL refused or not an image is the caller's input at fault
        (``InvalidImageError``); a transient failure stays retryable."""
        found: list[tuple[bytes, str]] = []
        for index, image in enumerate(request.images, 1):
            if image.data is not None:
                found.append((image.data, image.mime_type or "image/png"))
                continue
            try:
                [fetched] = await self.download([image.url or ""])
            except ProviderUnavailableError:
                raise
            except ProviderError as exc:
                raise InvalidImageError(f"input image {index} ({image.url}) cannot be used: {exc.message}") from exc
            found.append((fetched.data, fetched.mime_type))
        return found

    def result_of(self, job: Job) -> ImageResult:
        """The result of a finished job; JobFailedError if it failed or was cancelled."""
        if job.status == "succeeded" and job.result is not None:
            return job.result
        detail = (job.error or {}).get("message") or job.status
        raise JobFailedError(f"{self.instance_name} job {job.id} {job.status}: {detail}",
                             provider=self.instance_name)

    def job(self, native_id: str, status: JobStatus, **fields: Any) -> Job:
        """Build a Job with an id that routes back to this provider instance."""
        return Job(id=self.job_id(native_id), provider=self.instance_name, native_id=native_id, status=status,
                   **fields)

    def job_id(self, native_id: str) -> str:
        """The imagegen job id (``"<instance>:<native id>"``) of one of this instance's jobs."""
        return make_job_id(self.instance_name, native_id)

    # -- errors -----------------------------------------------------------------------------

    def read_error(self, reply: ErrorReply) -> ErrorDetails:
        """What the vendor's error body says. The default reads the common JSON envelopes;
        override for a vendor's own (and to pick another class for a special case)."""
        return read_error_body(reply.body)

    def status_error(self, reply: ErrorReply) -> ImageGenError:
        """The error for one error answer: ``status_errors`` and ``read_error`` combined."""
        details = self.read_error(reply)
        if details.message:
            details.message = self.scrub(details.message)[:600]
        return build_status_error(self.instance_name, reply, details, table=self.status_errors,
                                  request_id=reply.headers.get(self.request_id_header))

    def scrub(self, text: str) -> str:
        """``text`` without this instance's API key (vendors echo keys back in error messages)."""
        secret = self.api_key.get_secret_value() if self.api_key is not None else ""
        return text.replace(secret, "***") if secret else text

    def translate_error(self, exc: BaseException) -> ImageGenError | None:
        """Map an exception this provider knows to the imagegen tree; None for any other.

        Subclasses map their vendor's exceptions (an SDK's errors), then call super, which
        knows transport failures. An exception nobody maps is a bug in the provider (or in
        imagegen): the core lets it propagate unchanged, with its traceback, and neither
        retries it, nor counts it against the provider's circuit, nor moves a route on.
        A vendor answer that cannot be read is not such a bug: read answers inside
        ``parsing()``, which turns what goes wrong there into ``InvalidResponseError``.
        """
        name = self.instance_name
        if isinstance(exc, ImageGenError):
            return exc
        if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
            return ProviderTimeoutError(f"{name} did not answer in time ({type(exc).__name__})", provider=name)
        if isinstance(exc, (httpx.TransportError, ConnectionError)):
            return ProviderUnavailableError(f"{name} could not be reached ({type(exc).__name__})", provider=name)
        return None

    @contextmanager
    def translating(self) -> Iterator[None]:
        """Around calls into a vendor's SDK: an exception ``translate_error`` maps is raised as
        that error, from the original; anything else is a bug and propagates as it is."""
        try:
            yield
        except ImageGenError:
            raise
        except Exception as exc:
            error = self.translate_error(exc)
            if error is None:
                raise
            raise error from exc

    def parsing(self, what: str = "answer", *, status_code: int | None = None) -> AbstractContextManager[None]:
        """``parsing(self.instance_name, what, status_code=...)``: read a vendor answer inside it."""
        return parsing(self.instance_name, what, status_code=status_code)

    # -- lifecycle ----------------------------------------------------------------------

    def _resolve_api_key(self) -> SecretStr | None:
        if self.settings.api_key is not None:
            return self.settings.api_key
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
