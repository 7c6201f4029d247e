"""The nano-banana2.com provider: generate, edit, blend, status, credits.

``/generate``, ``/edit`` and ``/blend`` may answer at once with ``completed`` and
``outputs`` (the documented example), or with ``pending``/``processing``, after which
``GET /status/{job_id}`` is polled on the poll schedule (or a webhook arrives; see
``imagegen_nanobanana2.job_from_webhook``). A finished job's output URLs are downloaded at
once (``download_outputs``: the core hears of the billed job first); sizes come from the bytes.

Retries: the vendor's guide asks clients to retry 429, 503 and other 5xx answers with
exponential backoff plus jitter and to honour ``Retry-After``. That is what imagegen's
router does for every provider (``[retry]`` in the config), so this module makes each
call once; a retried polled job is resumed by its idempotency key rather than submitted again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from pydantic import Field, model_validator

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    Cost,
    ImageGenError,
    ImageRequest,
    ImageResult,
    InsufficientCreditsError,
    InvalidResponseError,
    Job,
    JobNotFoundError,
    ModelSpec,
    NoImageReturnedError,
    NotFoundError,
    PermissionDeniedError,
    ProviderInvalidImageError,
    Usage,
)
from imagegen.provider import (
    ErrorDetails,
    ErrorReply,
    HTTPProvider,
    PollSchedule,
    ProviderSettings,
    Schedule,
    StatusRule,
    parse_wait_hint,
)

from ._requests import build_call, check_options, wants_credit_check
from ._webhooks import parse_webhook
from ._wire import Generation, parse_balance, parse_error_body, parse_generation, salvage_job_id

__all__ = ["NanoBanana2Provider", "NanoBanana2Settings"]

log = logging.getLogger("imagegen.nanobanana2")

API_PATH = "/api/v1"
_CONTENT_POLICY_CODES = {"content_policy", "content_policy_violation", "safety", "nsfw", "moderation"}


class NanoBanana2Settings(ProviderSettings):
    """Settings of a nano-banana2 provider instance (``[providers.<name>]`` in the config)."""

    #: Check ``/credits/balance`` against the estimate before every submit.
    check_credits: bool = False
    #: Seconds before the first status poll; later polls back off to 10 s (sets ``poll_schedule``).
    poll_interval: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _interval_sets_the_schedule(self) -> NanoBanana2Settings:
        if self.poll_interval is not None and self.poll_schedule is None:
            self.poll_schedule = PollSchedule(self.poll_interval, 1.5, max(self.poll_interval, 10.0))
        return self


class NanoBanana2Provider(HTTPProvider):
    """nano-banana2.com: text to image, edit, two-image blend; credits billed per image."""

    name: ClassVar[str] = "nanobanana2"
    display_name: ClassVar[str] = "Nano Banana 2 (nano-banana2.com)"
    Settings: ClassVar[type[ProviderSettings]] = NanoBanana2Settings
    api_key_env: ClassVar[tuple[str, ...]] = ("NANO_BANANA_API_KEY", "NANOBANANA2_API_KEY")
    default_base_url: ClassVar[str] = "https://api.nano-banana2.com/api/v1"
    models_file: ClassVar[str | None] = "models.toml"
    # The guide: back off from 1-2 s up to about 10 s.
    poll_schedule: Schedule = PollSchedule(initial=1.0, factor=1.5, cap=10.0)
    status_errors: ClassVar[Mapping[int, StatusRule]] = {
        401: StatusRule(AuthenticationError,
                        "check NANO_BANANA_API_KEY (nano-banana2.com Dashboard -> Settings -> API)"),
        402: StatusRule(InsufficientCreditsError, "buy credits at nano-banana2.com or ask for fewer images"),
        403: StatusRule(PermissionDeniedError, "check the key's permissions"),
        404: StatusRule(NotFoundError, "check base_url (it should end in /api/v1)"),
        413: StatusRule(ProviderInvalidImageError, "the upload is too large: send a smaller image"),
    }
    emulator: ClassVar[str | None] = "imagegen_nanobanana2.emulator:create_emulator"

    settings: NanoBanana2Settings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # A bare host (the guide's NANO_BANANA_API_URL=https://api.nano-banana2.com, or an
        # emulator's root URL) means the API under /api/v1; any other path is used as given.
        if urlsplit(self.base_url).path in ("", "/"):
            self.base_url = self.base_url.rstrip("/") + API_PATH

    # -- before any network call -----------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        warnings = super().validate(request, spec)
        check_options(request, spec, provider=self.instance_name)
        return warnings

    # -- I/O --------------------------------------------------------------------------------

    async def balance(self) -> float:
        """The account's credit balance, from ``GET /credits/balance``."""
        body = await self.request_json("GET", "/credits/balance")
        with self.parsing("credit balance"):
            return parse_balance(body)

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        if wants_credit_check(request, self.settings.check_credits):
            await self._ensure_credits(request, spec)
        call = build_call(request, spec)
        if call.json is not None:
            response = await self.request("POST", call.path, json=call.json)
        else:
            response = await self.request("POST", call.path, data=call.data, files=call.files)
        try:
            body = self.decode_json(response)
        except InvalidResponseError:
            if (salvaged := salvage_job_id(response.content)) is None:
                raise
            log.warning("%s: the answer to a submit was cut short; following job %s by polling",
                        self.instance_name, salvaged)
            return self.job(salvaged, "queued", model=spec.id, metadata={"salvaged_from_truncated_answer": True})
        with self.parsing("submit answer", status_code=response.status_code):
            generation = parse_generation(body)
        return await self._job_of(generation, spec, submitted=True)

    async def status(self, native_id: str) -> Job:
        body = await self.request_json("GET", f"/status/{quote(native_id, safe='')}")
        with self.parsing("status answer"):
            generation = parse_generation(body)
        return await self._job_of(generation, self.model_spec(), submitted=False)

    async def webhook_job(self, payload: dict[str, Any] | bytes | str) -> Job:
        """A received webhook as the same Job ``status()`` returns, outputs downloaded.

        ``imagegen_nanobanana2.job_from_webhook`` is the download-free variant.
        """
        generation = parse_webhook(payload)
        if generation.status == "succeeded" and not generation.outputs:
            raise NoImageReturnedError(
                f"{self.instance_name} webhook for job {generation.id} says completed but has no outputs; "
                f"call status({self.job_id(generation.id)!r})", provider=self.instance_name)
        return await self._job_of(generation, self.model_spec(), submitted=False)

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
            return self.job(generation.id, "succeeded", result=await self._result_of(generation, spec), **fields)
        if status == "failed":
            error = {"message": generation.error or "the job failed (no reason given)"}
            if generation.error_code:
                error["code"] = generation.error_code
            return self.job(generation.id, "failed", error=error, **fields)
        return self.job(generation.id, status, **fields)

    async def _result_of(self, generation: Generation, spec: ModelSpec) -> ImageResult:
        images = await self.download_outputs(generation.id, [output.url for output in generation.outputs])
        metadata = generation.metadata()
        metadata["native_id"] = generation.id
        if generation.created_at is not None:
            metadata["created_at"] = generation.created_at.isoformat()
        usage = Usage(credits=generation.credits_used,
                      extra={} if generation.processing_time_ms is None
                      else {"processing_time_ms": generation.processing_time_ms})
        return ImageResult(images=images, provider=self.instance_name, model=spec.id, job_id=self.job_id(generation.id),
                           cost=self._actual_cost(generation, spec), usage=usage, metadata=metadata)

    @staticmethod
    def _actual_cost(generation: Generation, spec: ModelSpec) -> Cost:
        """The cost from ``credits_used``; without it, an estimated (empty) cost the client fills in."""
        credits = generation.credits_used
        if credits is None:
            return Cost(estimated=True)
        per_credit = spec.price.usd_per_credit if spec.price is not None else None
        usd = None if per_credit is None else round(credits * per_credit, 9)
        return Cost(usd=usd, credits=credits, estimated=False, breakdown={"credits_used": credits})

    def auth_headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **super().auth_headers()}

    # -- errors -------------------------------------------------------------------------------

    def read_error(self, reply: ErrorReply) -> ErrorDetails:
        body = parse_error_body(reply.body) if reply.body is not None else None
        if body is None:
            return ErrorDetails()
        code = (body.code or "").lower()
        details = ErrorDetails(message=body.message, code=body.code, retry_after=parse_wait_hint(body.retry_after))
        if reply.status_code == 402:
            details.fields = {"required": body.required, "available": body.available}
        elif code in _CONTENT_POLICY_CODES or "content policy" in (body.message or "").lower():
            details.error, details.advice = ContentPolicyError, "rephrase the prompt or change the image"
            details.fields = {"reason": body.code or None, "provider_message": self.scrub(body.message or "")}
        return details

    def status_error(self, reply: ErrorReply) -> ImageGenError:
        if reply.status_code == 404 and "/status/" in reply.path:
            job = reply.path.rsplit("/", 1)[-1]
            said = self.scrub(self.read_error(reply).message or reply.text)
            return JobNotFoundError(f"{self.instance_name} does not know job {job!r}: {said}; check the job id")
        return super().status_error(reply)
