"""The nano-banana2.com provider: generate, edit, blend, status, credits.

``/generate``, ``/edit`` and ``/blend`` may answer at once with ``completed`` and
``outputs`` (the documented example), or with ``pending``/``processing``, after which
``GET /status/{job_id}`` is polled on ``poll_schedule`` (or a webhook arrives; see
``imagegen_nanobanana2.job_from_webhook``). Output URLs are downloaded at once through
``imagegen._http.fetch_image``; sizes come from the bytes.

Retries: the vendor's guide asks clients to retry 429, 503 and other 5xx answers with
exponential backoff plus jitter and to honour ``Retry-After``. That is what imagegen's
router does for every provider (``[retry]`` in the config), so this module makes each
call once and reports a typed, retryable error with the server's wait hint; a retried
polled job is resumed by its idempotency key rather than submitted again.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import files
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    Cost,
    ImageGenError,
    ImageRequest,
    ImageResult,
    InsufficientCreditsError,
    InvalidImageError,
    InvalidRequestError,
    InvalidResponseError,
    Job,
    JobNotFoundError,
    ModelSpec,
    NoImageReturnedError,
    NotFoundError,
    PermissionDeniedError,
    PollSchedule,
    Provider,
    ProviderError,
    ProviderSettings,
    ProviderUnavailableError,
    RateLimitError,
    Usage,
)
from imagegen._capabilities import load_models
from imagegen._http import describe_body, parse_wait_hint, read_json, retry_after_from_headers
from imagegen._outputs import fetch_outputs

from ._requests import build_call, check_options, wants_credit_check
from ._webhooks import parse_webhook
from ._wire import ErrorBody, Generation, parse_balance, parse_error_body, parse_generation, salvage_job_id

__all__ = ["NanoBanana2Provider", "NanoBanana2Settings"]

log = logging.getLogger("imagegen.nanobanana2")

API_PATH = "/api/v1"
_CONTENT_POLICY_CODES = {"content_policy", "content_policy_violation", "safety", "nsfw", "moderation"}


class NanoBanana2Settings(ProviderSettings):
    """Settings of a nano-banana2 provider instance (``[providers.<name>]`` in the config)."""

    #: Check ``/credits/balance`` against the estimate before every submit.
    check_credits: bool = False
    #: Seconds before the first status poll; later polls back off to 10 s.
    poll_interval: float | None = Field(default=None, gt=0)


@cache
def _models() -> tuple[ModelSpec, ...]:
    return tuple(load_models(str(files("imagegen_nanobanana2").joinpath("models.toml"))))


class NanoBanana2Provider(Provider):
    """nano-banana2.com: text to image, edit, two-image blend; credits billed per image."""

    name: ClassVar[str] = "nanobanana2"
    display_name: ClassVar[str] = "Nano Banana 2 (nano-banana2.com)"
    Settings: ClassVar[type[ProviderSettings]] = NanoBanana2Settings
    api_key_env: ClassVar[tuple[str, ...]] = ("NANO_BANANA_API_KEY", "NANOBANANA2_API_KEY")
    default_base_url: ClassVar[str] = "https://api.nano-banana2.com/api/v1"
    default_timeout: ClassVar[float] = 60.0
    # The guide: back off from 1-2 s up to about 10 s.
    poll_schedule: ClassVar[PollSchedule] = PollSchedule(initial=1.0, factor=1.5, cap=10.0)
    emulator: ClassVar[str | None] = "imagegen_nanobanana2.emulator:create_emulator"

    settings: NanoBanana2Settings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A bare host (the guide's NANO_BANANA_API_URL=https://api.nano-banana2.com, or an
        # emulator's root URL) means the API under /api/v1; any other path is used as given.
        if urlsplit(self.base_url).path in ("", "/"):
            self.base_url = self.base_url.rstrip("/") + API_PATH
        if self.settings.poll_interval is not None:
            initial = self.settings.poll_interval
            self.poll_schedule = PollSchedule(initial=initial, factor=1.5, cap=max(initial, 10.0))  # type: ignore[misc]

    @classmethod
    def models(cls) -> list[ModelSpec]:
        return list(_models())

    # -- before any network call -----------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        warnings = super().validate(request, spec)
        check_options(request, spec, provider=self.instance_name)
        return warnings

    # -- I/O --------------------------------------------------------------------------------

    async def balance(self) -> float:
        """The account's credit balance, from ``GET /credits/balance``."""
        try:
            response = await self._request("GET", "/credits/balance")
            return parse_balance(read_json(response, provider=self.instance_name))
        except Exception as exc:
            raise self.translate_error(exc) from exc

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        try:
            if wants_credit_check(request, self.settings.check_credits):
                await self._ensure_credits(request, spec)
            call = build_call(request, spec)
            if call.json is not None:
                response = await self._request("POST", call.path, json=call.json)
            else:
                response = await self._request("POST", call.path, data=call.data, files=call.files)
            try:
                body = read_json(response, provider=self.instance_name)
            except InvalidResponseError:
                if (salvaged := salvage_job_id(response.content)) is None:
                    raise
                log.warning("%s: the answer to a submit was cut short; following job %s by polling",
                            self.instance_name, salvaged)
                return self.job(salvaged, "queued", model=spec.id, metadata={"salvaged_from_truncated_answer": True})
            return await self._job_of(parse_generation(body), spec, submitted=True)
        except Exception as exc:
            raise self.translate_error(exc) from exc

    async def status(self, native_id: str) -> Job:
        try:
            response = await self._request("GET", f"/status/{quote(native_id, safe='')}")
            generation = parse_generation(read_json(response, provider=self.instance_name))
            return await self._job_of(generation, self.model_spec(), submitted=False)
        except Exception as exc:
            raise self.translate_error(exc) from exc

    async def webhook_job(self, payload: dict[str, Any] | bytes | str) -> Job:
        """A received webhook as the same Job ``status()`` returns, outputs downloaded.

        ``imagegen_nanobanana2.job_from_webhook`` is the download-free variant.
        """
        try:
            generation = parse_webhook(payload)
            if generation.status == "succeeded" and not generation.outputs:
                raise NoImageReturnedError(
                    f"{self.instance_name} webhook for job {generation.id} says completed but has no outputs; "
                    f"call status({self.job(generation.id, 'running').id!r})", provider=self.instance_name)
            return await self._job_of(generation, self.model_spec(), submitted=False)
        except Exception as exc:
            raise self.translate_error(exc) from exc

    # -- helpers ------------------------------------------------------------------------------

    async def _ensure_credits(self, request: ImageRequest, spec: ModelSpec) -> None:
        required = self.estimate(request, spec).credits
        available = await self.balance()
        if required is not None and available < required:
            raise InsufficientCreditsError(
                f"{self.instance_name} has {available:g} credits and this request needs about {required:g}; "
                "buy credits at nano-banana2.com (Dashboard) or ask for fewer images",
                provider=self.instance_name, required=required, available=available)

    async def _job_of(self, generation: Generation, spec: ModelSpec, *, submitted: bool) -> Job:
        fields: dict[str, Any] = {"model": spec.id, "metadata": generation.metadata()}
        if generation.created_at is not None:
            fields["created_at"] = generation.created_at
        status = generation.status
        if status is None:
            log.warning("%s job %s has unknown status %r; treating it as running",
                        self.instance_name, generation.id, generation.raw_status)
            return self.job(generation.id, "running", **fields)
        if status == "succeeded" and not generation.outputs:
            if submitted:  # the guide: poll /status when outputs are missing
                return self.job(generation.id, "running", **fields)
            raise NoImageReturnedError(
                f"{self.instance_name} job {generation.id} completed without outputs; nothing to download",
                provider=self.instance_name)
        if status == "succeeded":
            result = await self._result_of(generation, spec)
            return self.job(generation.id, "succeeded", result=result, **fields)
        if status == "failed":
            error = {"message": generation.error or "the job failed (no reason given)"}
            if generation.error_code:
                error["code"] = generation.error_code
            return self.job(generation.id, "failed", error=error, **fields)
        return self.job(generation.id, status, **fields)

    async def _result_of(self, generation: Generation, spec: ModelSpec) -> ImageResult:
        images = await fetch_outputs(self.http, [output.url for output in generation.outputs],
                                     provider=self.instance_name, job_id=self.job(generation.id, "succeeded").id,
                                     policy=self.download_policy())
        metadata = generation.metadata()
        metadata["native_id"] = generation.id
        if generation.created_at is not None:
            metadata["created_at"] = generation.created_at.isoformat()
        usage = Usage(credits=generation.credits_used,
                      extra={} if generation.processing_time_ms is None
                      else {"processing_time_ms": generation.processing_time_ms})
        return ImageResult(images=list(images), provider=self.instance_name, model=spec.id,
                           job_id=self.job(generation.id, "succeeded").id, cost=self._actual_cost(generation, spec),
                           usage=usage, metadata=metadata)

    @staticmethod
    def _actual_cost(generation: Generation, spec: ModelSpec) -> Cost:
        """The cost from ``credits_used``; without it, an estimated (empty) cost the client fills in."""
        credits = generation.credits_used
        if credits is None:
            return Cost(estimated=True)
        per_credit = spec.price.usd_per_credit if spec.price is not None else None
        usd = None if per_credit is None else round(credits * per_credit, 9)
        return Cost(usd=usd, credits=credits, estimated=False, breakdown={"credits_used": credits})

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return headers

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; a non-2xx answer becomes a typed error (the router retries)."""
        response = await self.http.request(method, self.base_url + path, headers=self._headers(), **kwargs)
        if response.is_success:
            return response
        cause = httpx.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)
        raise self.translate_error(cause) from cause

    # -- the one error-translation point --------------------------------------------------------

    def translate_error(self, exc: BaseException) -> ImageGenError:
        if isinstance(exc, httpx.HTTPStatusError):
            return self._status_error(exc.response)
        return super().translate_error(exc)

    def _status_error(self, response: httpx.Response) -> ImageGenError:
        name, status = self.instance_name, response.status_code
        try:
            body: ErrorBody | None = parse_error_body(response.json())
        except (ValueError, UnicodeDecodeError):
            body = None
        said = self._scrub(body.message) if body is not None and body.message else describe_body(response)
        common: dict[str, Any] = {"provider": name, "status_code": status,
                                  "request_id": response.headers.get("x-request-id")}
        code = (body.code or "").lower() if body is not None else ""
        if status == 429:
            hint = retry_after_from_headers(response.headers)
            if hint is None and body is not None:
                hint = parse_wait_hint(body.retry_after)
            wait = f"wait {hint:g} s and retry" if hint is not None else "slow down and retry"
            return RateLimitError(f"{name} is rate limiting: {said}; {wait}", retry_after=hint, **common)
        if status >= 500:
            return ProviderUnavailableError(f"{name} server error: {said}; retry later", **common)
        if status == 401:
            return AuthenticationError(
                f"{name} rejected the API key: {said}; check NANO_BANANA_API_KEY "
                "(nano-banana2.com Dashboard -> Settings -> API)", **common)
        if status == 403:
            return PermissionDeniedError(f"{name} refused the call: {said}; check the key's permissions", **common)
        if status == 402:
            return InsufficientCreditsError(
                f"{name} is out of credits: {said}; buy credits at nano-banana2.com or ask for fewer images",
                required=body.required if body else None, available=body.available if body else None, **common)
        if status == 404:
            if "/status/" in response.request.url.path:
                job = response.request.url.path.rsplit("/", 1)[-1]
                return JobNotFoundError(f"{name} does not know job {job!r}: {said}; check the job id")
            return NotFoundError(f"{name} answered 404: {said}; check base_url (it should end in /api/v1)",
                                 **common)
        if code in _CONTENT_POLICY_CODES or "content policy" in said.lower():
            return ContentPolicyError(f"{name} refused the request: {said}; rephrase the prompt or change the image",
                                      reason=code or None, provider_message=said, **common)
        if status == 413:
            return self._tag(InvalidImageError(
                f"{name} refused the upload as too large (HTTP 413): {said}; send a smaller image"), status)
        if status in (400, 422):
            return self._tag(InvalidRequestError(f"{name} rejected the request (HTTP {status}): {said}; "
                                                 "check the prompt and options"), status)
        return ProviderError(f"{name} answered HTTP {status}: {said}", retryable=False, **common)

    def _tag(self, error: ImageGenError, status: int) -> ImageGenError:
        """Give a request error the provider and status that ``to_dict`` reports."""
        error.provider = self.instance_name  # type: ignore[attr-defined]
        error.status_code = status  # type: ignore[attr-defined]
        return error

    def _scrub(self, text: str) -> str:
        text = text[:500]
        if self.api_key is not None:
            secret = self.api_key.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text
