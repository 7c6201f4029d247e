"""A local, faithful emulator of OpenAI's Images API (``/v1/images/*``), for every model in
``models.toml``.

- ``POST /v1/images/generations`` (JSON; ``stream: true`` answers server-sent events);
- ``POST /v1/images/edits``: multipart (``image``, repeated ``image[]`` or ``image[N]``, ``mask``;
  empty part ``Content-Type`` and unquoted disposition parameters accepted) or, since
  2026-02-09, JSON (``images: [{image_url}]`` with data URLs or http(s) URLs, which are fetched;
  a failing fetch answers ``invalid_value``/``param: "url"``); ``mask`` must be a PNG with alpha
  the size of the first image;
- ``POST /v1/images/variations`` (``dall-e-2`` only, shut down, so refused unless ``today`` is
  before 2026-05-12);
- ``GET /v1/models[/{id}]``: image models with ``shutdown_date``; shut-down ones answer 404.

Auth: ``Authorization: Bearer`` is required (401 ``invalid_api_key`` with ``WWW-Authenticate``);
``api_keys`` limits the accepted keys. Answers carry ``x-request-id: req_<32 hex>``,
``openai-processing-ms``, ``openai-version`` and the ``openai-organization``/``-project`` sent.
GPT answers are base64 images of the requested size and format with the echo fields and
``usage`` from the token tables (``quality: auto`` resolves to ``auto_quality``, "medium" by
default; ``"random"`` picks medium or high, seeded, as the real API's choice varies); DALL-E
answers are ``url`` items (served from ``/files/...``) with ``revised_prompt`` on dall-e-3 and no
usage. A shut-down model answers 404 ``model_not_found`` (clock: ``today``). Every billed answer
is charged to ``counters`` under its request id; streaming adds 100 output tokens per partial
image to ``usage`` (whether the real ``usage`` includes them is UNKNOWN).

Prompt markers script the answer (anywhere in the prompt):

======================================= ===========================================================
``[[MODERATION_BLOCKED]]``              400 ``image_generation_user_error``/``moderation_blocked``,
                                        ``moderation_stage: input`` (``:output`` for the output
                                        stage; neither is charged: billing them is UNKNOWN)
``[[CONTENT_POLICY]]``                  400 ``content_policy_violation`` (the DALL-E era code)
``[[ERROR:rate_limit:S]]``              429 ``rate_limit_exceeded`` with ``retry-after: S``
``[[ERROR:rate_limit_ms:MS]]``          429 with ``retry-after-ms`` only; ``[[ERROR:rate_limit_bare]]``: no hint
``[[ERROR:quota]]`` / ``credits``       429 ``insufficient_quota`` / ``credit_balance_exhausted``
``[[ERROR:billing]]``                   400 ``billing_hard_limit_reached`` (2023-24 shape)
``[[ERROR:server]]`` / ``overloaded``   500 ``server_error`` / 503 ``server_is_overloaded``
``[[ERROR:verify]]``                    403 "Your organization must be verified ..."
``[[ERROR:conflict]]``                  409 (retried by the SDK)
``[[DROP_AFTER_BILLING]]``              charges, then cuts the connection mid-answer (the first
                                        request with that prompt only, so a retry can succeed)
``[[SLOW:S]]``                          answers after S more seconds
``[[STREAM_ERROR]]`` / ``[[STREAM_CUT]]`` a stream sends its previews, then an ``error`` event (an
                                        invented shape; not charged) / ends without ``completed``
                                        (charged: a stream is billed as its 200 goes out)
======================================= ===========================================================

The kit's fault plan works too, in OpenAI's envelope: ``rate_limit`` is a 429 with
``retry-after`` and ``retry-after-ms``, ``server_error`` a 503, ``timeout`` a 504 after the delay.
Options of `create_emulator`: ``api_keys``, ``image_scale`` (shrink images, e.g. for small
cassettes; ``pixel_scale`` is its old name), ``today`` (the date for shutdowns), ``auto_quality``,
``no_streaming`` (model ids that refuse ``stream``).
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import itertools
import math
import random
import time
import warnings
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from imagegen import ModelSpec
from imagegen.testing import Emulator, Fault, FaultPlan, LatencyModel

from ._catalog import family, load_catalog, parse_wh
from ._emulator_answers import AnswerParts
from ._emulator_shapes import (
    Reject,
    bad,
    check_params,
    json_body,
    markers,
    openai_error,
    parse_multipart,
    scripted_error,
    sniff,
)
from ._pricing import cost_of
from ._wire import usage_of

__all__ = ["OpenAIEmulator", "create_emulator"]

_INPUT_TYPES = ("image/png", "image/jpeg", "image/webp")


class OpenAIEmulator(AnswerParts, Emulator):
    """OpenAI's Images API; see the module docstring."""

    name = "openai"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                 api_keys: set[str] | frozenset[str] | list[str] | None = None, image_scale: float | None = None,
                 today: dt.date | str | None = None, auto_quality: str = "medium",
                 no_streaming: frozenset[str] | set[str] | list[str] = frozenset(),
                 pixel_scale: float | None = None) -> None:
        # The kit keeps the accepted keys (an ApiKeys: ``key in self.api_keys`` checks one).
        super().__init__(faults=faults, latency=latency, seed=seed, api_keys=api_keys)
        if pixel_scale is not None:  # the name the other emulators gave up; kept for old callers
            warnings.warn("the 'pixel_scale' option is now called 'image_scale'", DeprecationWarning, stacklevel=3)
            image_scale = pixel_scale if image_scale is None else image_scale
        image_scale = 1.0 if image_scale is None else image_scale
        if not 0 < image_scale <= 1:
            raise ValueError(f"image_scale must be in (0, 1], got {image_scale!r}")
        if auto_quality not in ("low", "medium", "high", "random"):
            raise ValueError(f"auto_quality must be low, medium, high or random, got {auto_quality!r}")
        self.image_scale = image_scale
        self.today = dt.date.fromisoformat(today) if isinstance(today, str) else today
        self.auto_quality = auto_quality
        #: Models that refuse ``stream`` (gpt-image-2's model page says "Streaming: not supported").
        self.no_streaming = frozenset(no_streaming)
        #: The last requests' parameters (files as name/type/size), newest last; for assertions.
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=16)
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)
        self._dropped_once: set[str] = set()
        self._models = {name: spec for spec in load_catalog() for name in spec.names}

    # -- routes and envelopes ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/images/generations", self._generations, methods=["POST"]),
            Route("/v1/images/edits", self._edits, methods=["POST"]),
            Route("/v1/images/variations", self._variations, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        if status == 429:
            return openai_error(429, "Rate limit exceeded for images per minute. Please try again later. "
                                     "(injected fault)", type_="requests", code="rate_limit_exceeded")
        type_ = "server_error" if status >= 500 else "invalid_request_error"
        return openai_error(status, message, type_=type_, code=None)

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        if fault.retry_after is None:
            return {}
        return {"retry-after": str(math.ceil(fault.retry_after)),
                "retry-after-ms": str(round(fault.retry_after * 1000))}

    # -- handlers -------------------------------------------------------------------------------

    async def _generations(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            params = json_body(await request.body())
            self.received.append({"endpoint": "generations", **params, "headers": {
                k: v for k, v in request.headers.items() if k in ("openai-organization", "openai-project")}})
            spec = self._model(params.get("model"))
            settings = check_params(params, spec, edit=False)
            self._check_streaming(settings, spec)
            self._scripted(settings["prompt"], spec)
        except Reject as reject:
            return self._headed(request, reject.response)
        return await self._answer(request, spec, settings, [], params, event="image_generation")

    async def _edits(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            content_type = request.headers.get("content-type", "")
            raw = await request.body()
            if content_type.startswith("multipart/form-data"):
                params, inputs, mask = self._multipart_edit(raw, content_type)
            else:
                params = json_body(raw)
                inputs, mask = await self._json_edit(params)
            spec = self._model(params.get("model"))
            if not spec.supports_edit:
                raise bad(f"The model {spec.id} does not support image edits.", param="model")
            if len(inputs) > max(1, spec.max_reference_images):
                raise bad(f"Too many images: {len(inputs)}. {spec.id} accepts at most "
                          f"{spec.max_reference_images}.", param="image")
            settings = check_params({k: v for k, v in params.items() if k not in ("image", "images", "mask")},
                                    spec, edit=True)
            self._check_mask(mask, inputs)
            self._check_streaming(settings, spec)
            self._scripted(settings["prompt"], spec)
        except Reject as reject:
            return self._headed(request, reject.response)
        return await self._answer(request, spec, settings, inputs, params, event="image_edit")

    async def _variations(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            form = parse_multipart(await request.body(), request.headers.get("content-type", ""))
            spec = self._model(form.fields.get("model", "dall-e-2"))
            if spec.id != "dall-e-2":
                raise bad("Variations are only supported for dall-e-2.", param="model")
            settings = check_params({"prompt": "variation", **form.fields}, spec, edit=True)
        except Reject as reject:
            return self._headed(request, reject.response)
        return await self._answer(request, spec, settings, [f.data for f in form.files], form.fields, event="")

    # -- checks -----------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        challenge = {"WWW-Authenticate": 'Bearer realm="OpenAI API"'}
        if not key:
            raise Reject(openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                                           "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                                           "YOUR_KEY).", headers=challenge))
        if key not in self.api_keys:
            shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
            raise Reject(openai_error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                           "https://platform.openai.com/account/api-keys.",
                                      code="invalid_api_key", headers=challenge))

    def _model(self, model: Any) -> ModelSpec:
        if not isinstance(model, str) or not model:
            # Emulator invention: the 2026-11 reference says the model "must be specified explicitly".
            raise bad("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        spec = self._models.get(model)
        if spec is None:
            raise Reject(openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                                      code="model_not_found"))
        shutdown = spec.extra.get("shutdown")
        if shutdown is not None and shutdown <= (self.today or dt.datetime.now(dt.UTC).date()):
            raise Reject(openai_error(404, f"The model `{model}` has been deprecated and is no longer available. "
                                           f"Use `{spec.extra.get('replacement')}` instead.", code="model_not_found"))
        return spec

    def _multipart_edit(self, raw: bytes, content_type: str) -> tuple[dict[str, Any], list[bytes], bytes | None]:
        form = parse_multipart(raw, content_type)
        inputs, mask = [], None
        images = [f for f in form.files if f.field == "image" or f.field.startswith("image[")]
        for index, upload in enumerate(images):
            inputs.append(self._input(upload.data, upload.content_type, param=f"image[{index}]"))
        for upload in form.files:
            if upload.field == "mask":
                mask = upload.data
        if not images:
            raise bad("Missing required parameter: 'image'.", param="image", code="missing_required_parameter")
        self.received.append({"endpoint": "edits", "encoding": "multipart", **form.fields,
                              "files": [(f.field, f.filename, f.content_type, len(f.data)) for f in form.files]})
        return dict(form.fields), inputs, mask

    def _input(self, data: bytes, declared: str, *, param: str) -> bytes:
        if declared and declared.split(";")[0].strip() not in _INPUT_TYPES and declared != "application/octet-stream":
            raise bad(f"Invalid file '{param}': unsupported mimetype ('{declared}'). Supported file formats are "
                      "'image/jpeg', 'image/png', and 'image/webp'.", param=param, code="unsupported_file_mimetype")
        info = sniff(data)
        if info is None or info[0] not in _INPUT_TYPES:
            raise Reject(openai_error(400, "Invalid image data.", type_="image_generation_user_error",
                                      code="invalid_image_file", param=param))
        return data

    async def _json_edit(self, params: dict[str, Any]) -> tuple[list[bytes], bytes | None]:
        images = params.get("images")
        if not isinstance(images, list) or not images:
            raise bad("Missing required parameter: 'images'.", param="images", code="missing_required_parameter")
        self.received.append({"endpoint": "edits", "encoding": "json",
                              **{k: v for k, v in params.items() if k not in ("images", "mask")},
                              "images": len(images), "mask": "mask" in params})
        inputs = [await self._reference(ref, f"images[{i}]") for i, ref in enumerate(images)]
        mask = await self._reference(params["mask"], "mask") if params.get("mask") is not None else None
        return inputs, mask

    async def _reference(self, ref: Any, param: str) -> bytes:
        if not isinstance(ref, dict) or len({"image_url", "file_id"} & set(ref)) != 1:
            raise bad(f"Each of '{param}' needs exactly one of image_url or file_id.", param=param)
        if "file_id" in ref:
            raise bad("The emulator has no Files API: send image_url.", param=f"{param}.file_id")
        url = ref["image_url"]
        if not isinstance(url, str) or not url:
            raise bad("image_url must be a string.", param=f"{param}.image_url")
        if url.startswith("data:"):
            try:
                data = base64.b64decode(url.partition(",")[2], validate=True)
            except ValueError:
                raise Reject(openai_error(400, "Invalid image data.", type_="image_generation_user_error",
                                          code="invalid_image_file", param=f"{param}.image_url")) from None
        else:
            data = await self._download(url)
        return self._input(data, "", param=f"{param}.image_url")

    async def _download(self, url: str) -> bytes:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(url)
        except httpx.HTTPError:
            raise bad("Error while downloading file. Could not connect.", param="url") from None
        if response.status_code != 200:
            raise bad(f"Error while downloading file. Upstream status code: {response.status_code}.", param="url")
        return response.content

    def _check_streaming(self, settings: dict[str, Any], spec: ModelSpec) -> None:
        if settings["stream"] and spec.id in self.no_streaming:
            raise bad(f"Streaming is not supported for {spec.id}.", param="stream")  # an emulator invention

    @staticmethod
    def _check_mask(mask: bytes | None, inputs: list[bytes]) -> None:
        if mask is None:
            return
        info = sniff(mask)
        if info is None or info[0] != "image/png" or not info[3]:
            raise bad("Invalid mask: the mask must be a PNG image with an alpha channel.", param="mask")
        first = sniff(inputs[0]) if inputs else None
        if first is not None and first[1:3] != info[1:3]:
            raise bad(f"Invalid mask: the mask is {info[1]}x{info[2]} but the image is {first[1]}x{first[2]}; they "
                      "must have the same dimensions.", param="mask")

    def _scripted(self, prompt: str, spec: ModelSpec) -> None:
        scripted_error(prompt, spec)

    # -- answers ----------------------------------------------------------------------------------

    def _request_id(self) -> str:
        return "req_" + hashlib.sha256(f"openai:{self.seed}:{next(self._ids)}".encode()).hexdigest()[:32]

    def _headed(self, request: Request, response: Response, *, started: float | None = None,
                request_id: str | None = None) -> Response:
        response.headers["x-request-id"] = request_id or self._request_id()
        response.headers["openai-version"] = "2020-10-01"
        response.headers["openai-processing-ms"] = str(round((time.monotonic() - (started or time.monotonic())) * 1000))
        for name in ("openai-organization", "openai-project"):
            if request.headers.get(name):
                response.headers[name] = request.headers[name]
        return response

    def _quality(self, spec: ModelSpec, quality: str) -> str:
        if quality != "auto":
            return quality
        if self.auto_quality == "random":
            return self._rng.choice(["medium", "high"])
        return self.auto_quality

    def _pixels(self, spec: ModelSpec, size: str) -> tuple[int, int, str]:
        wire = "1024x1024" if size == "auto" else size
        width, height = parse_wh(wire) or (1024, 1024)
        return max(16, round(width * self.image_scale)), max(16, round(height * self.image_scale)), wire

    async def _answer(self, request: Request, spec: ModelSpec, settings: dict[str, Any], inputs: list[bytes],
                      params: dict[str, Any], *, event: str) -> Response:
        started = time.monotonic()
        request_id = self._request_id()
        width, height, wire = self._pixels(spec, settings["size"])
        quality = self._quality(spec, settings["quality"])
        fmt, transparent = settings["output_format"], settings["background"] == "transparent"
        prompt = settings["prompt"]
        await self.latency.sleep(settings["n"] * width * height / 1e6 / self.image_scale ** 2)
        for name, _, number in markers(prompt):
            if name == "SLOW":
                await anyio.sleep(float(number or 1))
        images = [self._render(width, height, fmt, transparent=transparent) for _ in range(settings["n"])]
        if family(spec).startswith("dalle"):
            body, usd = self._dalle_body(request, spec, settings, params, images, quality)
        else:
            usage = self._usage(spec, settings, len(inputs), quality, wire)
            usd = cost_of(usage_of(usage), spec).usd or 0.0
            body = {"created": int(time.time()), "background": "transparent" if transparent else "opaque",
                    "data": [{"b64_json": base64.b64encode(data).decode()} for data in images],
                    "output_format": fmt, "quality": quality, "size": wire, "usage": usage}
        if any(name == "DROP_AFTER_BILLING" for name, _, _ in markers(prompt)) and prompt not in self._dropped_once:
            self._dropped_once.add(prompt)
            return self._headed(request, self._dropped(body, usd, request_id), started=started, request_id=request_id)
        if settings["stream"]:
            faults = {name for name, _, _ in markers(prompt)}
            settings["stream_fault"] = ("error" if "STREAM_ERROR" in faults
                                        else "cut" if "STREAM_CUT" in faults else None)
            response: Response = StreamingResponse(self._events(body, usd, request_id, event, settings, width, height),
                                                   media_type="text/event-stream")
        else:
            self.counters.charge(usd=usd, ref=request_id)
            response = JSONResponse(body)
        return self._headed(request, response, started=started, request_id=request_id)

def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    **options: Any) -> OpenAIEmulator:
    """The OpenAI Images emulator (``imagegen emulate openai``); ``options`` as in the module docstring."""
    return OpenAIEmulator(faults=faults, latency=latency, seed=seed, **options)
