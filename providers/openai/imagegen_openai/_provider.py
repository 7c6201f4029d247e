"""The ``openai`` provider: OpenAI's Images API (``/v1/images/generations`` and ``/edits``) for the
GPT Image models, through httpx directly.

Why httpx and not the official ``openai`` SDK: the 2026 SDK is typed for its own ``httpx2`` fork;
the provider's pooled ``httpx.AsyncClient`` (limits, the download guard, the shared TLS context)
can be handed to it only because the SDK happens to build requests with the client it is given,
which no release promises. It would also bring a second error tree and a retry policy to switch
off (the router retries and honours the same hints), its ``size`` types lag the API's free sizes,
and its edit method has no JSON form. The wire is small (two JSON/multipart POSTs, one error
envelope). ``benchmarks/openai_overhead.py`` measured both against the emulator: per-call time
within a few percent of each other (``benchmarks/results/openai_overhead.md``). The tests drive
the emulator with the real SDK.

The API is synchronous (a ``SynchronousProvider``): ``generate``/``edit`` make one call and report
the finished job through ``on_submit``; ``submit`` returns an already-succeeded job, and the job
store answers ``status``. Sending and error answers are the kit's (``HTTPProvider``, the status
table in ``_vendor_errors``); only the event stream of previews is read here.
There is no idempotency key: a 2xx whose body is lost was billed and cannot be fetched again
(``bills_unreadable_answers``), and a retry after a client-side timeout may bill twice (the server
may have finished the first).

Configuration (``[providers.openai]``)::

    api_key = "env:OPENAI_API_KEY"
    model = "gpt-image-2"                # default; see models.toml for the line-up and shutdowns
    organization = "org-..."             # OpenAI-Organization (else $OPENAI_ORG_ID)
    project = "proj_..."                 # OpenAI-Project (else $OPENAI_PROJECT_ID)
    base_url = "https://eu.api.openai.com/v1"   # data residency, a proxy, or the emulator
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from imagegen import (
    Cost,
    ImageRequest,
    ImageResult,
    InvalidRequestError,
    InvalidResponseError,
    ModelSpec,
    NoImageReturnedError,
)
from imagegen.provider import (
    ErrorDetails,
    ErrorReply,
    HTTPProvider,
    PartialImage,
    ProviderSettings,
    StatusRule,
    SynchronousProvider,
    decode_image,
    fetch_image,
    partial_sink,
)

from ._catalog import check_lifecycle, family, load_catalog
from ._params import MAX_PARTIAL_IMAGES, check, edit_call, generation_body, wire_format
from ._pricing import cost_of, estimate_cost, flat_cost
from ._vendor_errors import STATUS_ERRORS, rate_limit_headers, read_openai_error
from ._wire import Parsed, SseDecoder, parse_images, usage_of

__all__ = ["OpenAIProvider", "OpenAISettings"]

#: Server processing took 15-35 s for GPT models and once 112 s in public reports: 180 s leaves room.
DEFAULT_TIMEOUT_S = 180.0


class OpenAISettings(ProviderSettings):
    """``[providers.openai]``: the common settings plus the organisation and project headers."""

    organization: str | None = None
    project: str | None = None


class OpenAIProvider(SynchronousProvider, HTTPProvider):
    """OpenAI Images (GPT Image 2 / 2.5 / 2.6): generations, edits with masks, streamed previews."""

    name = "openai"
    display_name = "OpenAI Images (GPT Image)"
    Settings = OpenAISettings
    api_key_env = ("OPENAI_API_KEY",)
    default_base_url = "https://api.openai.com/v1"
    default_timeout = DEFAULT_TIMEOUT_S
    bills_unreadable_answers = True
    status_errors: ClassVar[Mapping[int, StatusRule]] = STATUS_ERRORS
    emulator = "imagegen_openai.emulator:create_emulator"

    settings: OpenAISettings

    def __init__(self, *, instance_name: str, settings: ProviderSettings, http: httpx.AsyncClient) -> None:
        super().__init__(instance_name=instance_name, settings=settings, http=http)
        # A bare host (an emulator's root URL, a proxy) means the API under /v1, as OpenAI's own URLs.
        if urlsplit(self.base_url).path in ("", "/"):
            self.base_url = self.base_url.rstrip("/") + "/v1"
        #: Today's date for the model lifecycle (tests replace it).
        self.today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date()

    # -- data ----------------------------------------------------------------------------------

    @classmethod
    def models(cls) -> list[ModelSpec]:
        return list(load_catalog())

    # -- before any network call -----------------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        warnings = check_lifecycle(spec, self.today(), provider=self.instance_name)
        check(request, spec, provider=self.instance_name)
        # Sizes, ratios and the mask rules are OpenAI's own (checked above); the shared checks do the rest.
        shared = request.model_copy(update={"size": None, "aspect_ratio": None})
        return [*warnings, *super().validate(shared, spec.model_copy(update={"deprecated": None}))]

    def estimate(self, request: ImageRequest, spec: ModelSpec) -> Cost:
        size = check(request, spec, provider=self.instance_name)
        return estimate_cost(request, spec, size, partials=self._partials(request, spec))

    @staticmethod
    def _partials(request: ImageRequest, spec: ModelSpec) -> int:
        sink = partial_sink()
        if sink is None or request.n != 1 or not spec.extra.get("streaming"):
            return 0
        return max(0, min(MAX_PARTIAL_IMAGES, sink.partials))

    # -- I/O -------------------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        organization = self.settings.organization or os.environ.get("OPENAI_ORG_ID")
        project = self.settings.project or os.environ.get("OPENAI_PROJECT_ID")
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        return headers

    def _send_args(self, request: ImageRequest, spec: ModelSpec, size: str, partials: int | None) -> dict[str, Any]:
        if request.operation == "edit":
            call = edit_call(request, spec, size, stream=partials)
            if call.json is not None:
                return {"path": "/images/edits", "json": call.json}
            return {"path": "/images/edits", "data": call.data, "files": call.files}
        return {"path": "/images/generations", "json": generation_body(request, spec, size, stream=partials)}

    async def call(self, request: ImageRequest, spec: ModelSpec, *, deadline: float) -> ImageResult:
        size = check(request, spec, provider=self.instance_name)
        partials = self._partials(request, spec) if partial_sink() is not None else 0
        warnings: list[str] = []
        if partial_sink() is not None and not partials:
            warnings.append(f"{self.instance_name}/{spec.id} streams previews only for n=1; none were sent")
        timeout = max(1.0, min(deadline - time.monotonic(), self.request_timeout(request, spec)))
        if partials:
            try:
                return await self._streamed(request, spec, size, partials, timeout, warnings)
            except InvalidRequestError as exc:
                if exc.to_dict()["status_code"] != 400 or "stream" not in exc.message.lower():
                    raise
                # The model page of gpt-image-2 says "Streaming: not supported" while the reference
                # documents it: a 400 about streaming falls back to one plain call.
                warnings.append(f"{self.instance_name}/{spec.id} refused streaming; the image came in one piece")
        response = await self.request("POST", **self._send_args(request, spec, size, None),
                                      headers={"Accept": "application/json"}, timeout=timeout)
        return await self._result(self._parse(response), request, spec, size, response.headers, warnings)

    def _parse(self, response: httpx.Response) -> Parsed:
        # A 2xx this provider cannot read was billed all the same (bills_unreadable_answers).
        with self.parsing("answer", status_code=response.status_code):
            return parse_images(response.content)

    async def _streamed(self, request: ImageRequest, spec: ModelSpec, size: str, partials: int, timeout: float,
                        warnings: list[str]) -> ImageResult:
        sink = partial_sink()
        assert sink is not None
        args = self._send_args(request, spec, size, partials)
        async with self.http.stream("POST", self.url(args.pop("path")), **args, timeout=timeout,
                                    headers={**self.auth_headers(), "Accept": "text/event-stream"}) as response:
            if not response.is_success:
                await response.aread()
                raise self.status_error(ErrorReply.from_response(response))
            if "text/event-stream" not in response.headers.get("content-type", ""):
                await response.aread()  # a relay that ignored `stream`: an ordinary answer
                return await self._result(self._parse(response), request, spec, size, response.headers, warnings)
            decoder = SseDecoder()
            final: dict[str, Any] | None = None
            async for line in response.aiter_lines():
                with self.parsing("stream event", status_code=200):
                    event = decoder.line(line)
                if event is None:
                    continue
                if event.type.endswith(".partial_image"):
                    image = decode_image(event.data.get("b64_json"), provider=self.instance_name, what="preview")
                    with self.parsing("stream event", status_code=200):
                        index = int(event.data.get("partial_image_index", 0))
                    sink.deliver(PartialImage(index=index, image=image, provider=self.instance_name, model=spec.id))
                elif event.type.endswith(".completed"):
                    final = event.data
                elif event.type == "error" or "error" in event.data:
                    found = event.data.get("error")
                    body: dict[str, Any] = found if isinstance(found, dict) else event.data
                    raise self.status_error(ErrorReply(status_code=500 if not body.get("code") else 400,
                                                       headers=response.headers, body={"error": body}))
            if final is None:
                raise InvalidResponseError(
                    f"{self.instance_name}'s stream ended without a completed event; it was probably cut short",
                    provider=self.instance_name, status_code=response.status_code,
                    request_id=response.headers.get("x-request-id"))
            parsed = Parsed(created=final.get("created_at"), usage=final.get("usage"),
                            items=parse_images({"data": [{"b64_json": final.get("b64_json")}]}).items,
                            echo={k: final[k] for k in ("background", "output_format", "quality", "size")
                                  if isinstance(final.get(k), str)})
            return await self._result(parsed, request, spec, size, response.headers, warnings)

    async def _result(self, parsed: Parsed, request: ImageRequest, spec: ModelSpec, size: str,
                      headers: httpx.Headers, warnings: list[str]) -> ImageResult:
        if not parsed.items:
            raise NoImageReturnedError(f"{self.instance_name} answered without any image", provider=self.instance_name,
                                       status_code=200, request_id=headers.get("x-request-id"))
        images = await asyncio.gather(*(
            fetch_image(self.http, item.url, provider=self.instance_name, policy=self.download_policy())
            if item.url is not None else asyncio.sleep(0, decode_image(item.data, provider=self.instance_name))
            for item in parsed.items))
        usage = usage_of(parsed.usage)
        if parsed.usage is not None:
            cost = cost_of(usage, spec)
        else:  # DALL-E: no usage, a flat price per image
            quality = parsed.echo.get("quality") or request.options.get("quality")
            cost = flat_cost(spec, quality, parsed.echo.get("size") or size, len(images))
        request_id = headers.get("x-request-id") or f"local-{uuid.uuid4().hex}"
        revised = [item.revised_prompt for item in parsed.items]
        metadata: dict[str, Any] = {"request_id": request_id, "created": parsed.created, **parsed.echo,
                                    "requested_size": size, "output_format_requested": wire_format(request)}
        if any(revised):
            metadata["revised_prompts"] = revised
        if headers.get("openai-processing-ms"):
            metadata["processing_ms"] = headers["openai-processing-ms"]
        if limits := rate_limit_headers(headers):
            metadata["rate_limits"] = limits
        if family(spec).startswith("dalle"):
            metadata["output_urls"] = [item.url for item in parsed.items if item.url]
        return ImageResult(images=list(images), provider=self.instance_name, model=spec.id,
                           job_id=self.job_id(request_id), cost=cost, usage=usage,
                           text=[r for r in revised if r], metadata=metadata, warnings=warnings)

    # -- errors ------------------------------------------------------------------------------------

    def read_error(self, reply: ErrorReply) -> ErrorDetails:
        return read_openai_error(reply, scrub=self.scrub)
