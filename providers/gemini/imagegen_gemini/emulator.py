"""A local, faithful emulator of Gemini's ``generateContent`` for the image models.

Serves, for every model in ``models.toml`` (GA and ``-preview`` ids):

- ``POST /{v1|v1beta}/models/{model}:generateContent`` and ``:streamGenerateContent``
  (Gemini API; ``x-goog-api-key`` header or ``?key=``; no key: 403, a key outside
  ``api_keys``: 400 ``API_KEY_INVALID``); with ``?alt=sse`` the stream is Server-Sent Events,
  without it one JSON array (see ``_emulator_stream``);
- ``GET /{v1|v1beta}/models`` and ``/{v1|v1beta}/models/{model}`` (``ListModels``, ``GetModel``);
- ``POST /{v1|v1beta1}/publishers/google/models/{model}:generateContent`` (Vertex AI express
  mode, API key) and ``.../projects/{p}/locations/{l}/publishers/google/models/{model}:...``
  (Vertex AI, any ``Authorization: Bearer`` token), both also ``:streamGenerateContent``;
  Vertex answers omit ``index`` and add ``createTime`` and ``trafficType``.

Any other path, or method, answers Google's JSON error envelope (404 ``NOT_FOUND``, 405).

Answers follow the recorded responses: lowerCamelCase JSON, standard base64 images of the
documented size for the ratio and size (PNG on 2.5 Flash Image, JPEG on 3.x). With no ratio, an
edit gets the model's ratio nearest the input image's shape (the API matches the input), and a
generation the observed 1408x768 on 3.x. ``usageMetadata`` follows the token table with
``total = prompt + candidates + thoughts``; ``thoughtSignature`` sits on the first part and on
image parts (3.x); thought parts come when ``includeThoughts`` is set. Requests are validated as
the API does (unknown fields, missing contents, modalities in any letter case, the proto-level
and per-model ratio and size rules, ``candidateCount``), with Google's error envelope.
snake_case requests are accepted.

Prompt markers (anywhere in the prompt text) script the answer:

=============================== =================================================================
``[[TWO_IMAGES]]``              text, image, text, image (interleaved)
``[[TEXT_ONLY]]``               HTTP 200, STOP, a text-only refusal and no image
``[[NO_IMAGE]]``                HTTP 200, ``finishReason: NO_IMAGE``, empty content
``[[IMAGE_SAFETY]]``            HTTP 200, ``IMAGE_SAFETY`` with Google's finishMessage
``[[IMAGE_PROHIBITED_CONTENT]]`` HTTP 200, ``IMAGE_PROHIBITED_CONTENT``, content without parts
``[[FINISH:REASON]]``           HTTP 200, any other finishReason (``SAFETY``, ``RECITATION`` ...)
``[[BLOCK_PROMPT]]``            HTTP 200, ``promptFeedback.blockReason: PROHIBITED_CONTENT``, no
                                candidates (``[[BLOCK:REASON]]`` for another reason)
``[[ERROR:KIND]]``              an error envelope: ``quota`` (429 + RetryInfo 34s; ``quota:0.5``
                                sets the delay), ``capacity`` (429, no details), ``prepayment``
                                (429 credits depleted), ``internal`` (500), ``unavailable``
                                (503), ``deadline`` (504), ``location`` (400
                                FAILED_PRECONDITION), ``permission`` (403)
=============================== =================================================================

The kit's fault plan works too, in Google's envelope: ``rate_limit`` is a 429 with
``RetryInfo`` (the fault's ``retry_after``) and never a ``Retry-After`` header, ``server_error``
a 503 ``UNAVAILABLE`` (or its status), ``timeout`` a 504 after the delay; ``drop`` and
``timeout`` with ``after_chunks`` cut or stall a stream mid-way. `refusal_fault` scripts an
HTTP-200 refusal through a plan: ``FaultPlan.script(refusal_fault("NO_IMAGE"))``.

``received`` keeps the last request bodies as sent, for tests. Options of `create_emulator`:
``api_keys`` (accepted keys; default any), ``image_scale`` (shrink images, e.g. for small
cassettes; ``pixel_scale`` is its old name), ``default_shape`` (``"observed"`` or ``"square"``
when no ratio is sent), ``enforce_shutdowns`` (404 for models the Gemini API has retired),
``clock`` (the kit's `Clock`; a `FakeClock` makes latency instant and moves batches along by
hand). Routes come from `ROUTE_SETS`: a family of routes is a function there, in its own module.

Multi-turn (``_emulator_turns``): signatures are verifiable, and a request whose earlier model
turns lost or changed one is answered ``MISSING_THOUGHT_SIGNATURE`` (``missing_signature="400"``:
a 400 instead); ``signature_bytes`` pads signatures to a realistic size (real ones: 1-3 MB).
The Batch and Files APIs (``_emulator_batch``, as ``self.batches``): ``batch_turnaround_s`` on
``clock``, ``batch_member_faults``, ``batch_file_results`` and ``batch_get_pitfall_bytes``.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import warnings
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from imagegen import ModelSpec
from imagegen.testing import Clock, Emulator, Fault, FaultPlan, LatencyModel, Reject, read_header

from ._catalog import load_catalog
from ._emulator_answer import build_answer
from ._emulator_batch import BatchRoutes
from ._emulator_models import count_tokens_endpoint, get_model, list_models
from ._emulator_request import check_request
from ._emulator_shapes import (
    ERRORS,
    MARKER,
    camelize,
    google_error,
    prompt_of,
    quota_error,
    quota_reject,
    refusal_fault,
)
from ._emulator_stream import SSE_MEDIA_TYPE, sse_events, stream_chunks
from ._emulator_turns import check_signatures

__all__ = ["ROUTE_SETS", "GeminiEmulator", "create_emulator", "google_error", "refusal_fault"]

GEMINI_VERSIONS = ("v1", "v1beta")
VERTEX_VERSIONS = ("v1", "v1beta1")
_JSON = "application/json; charset=UTF-8"
_VERTEX_PROJECT = "/{version}/projects/{project}/locations/{location}/publishers/google/models/{model}"


def generate_routes(emu: GeminiEmulator) -> list[BaseRoute]:
    """generateContent and streamGenerateContent, on the Gemini API and both Vertex forms."""
    routes: list[BaseRoute] = []
    for prefix, api in (("/{version}/models/{model}", "gemini"),
                        ("/{version}/publishers/google/models/{model}", "vertex"),
                        (_VERTEX_PROJECT, "vertex-project")):
        for method, stream in ((":generateContent", False), (":streamGenerateContent", True)):
            routes.append(Route(prefix + method, emu.generate_endpoint(api, stream=stream), methods=["POST"]))
    return routes


def model_routes(emu: GeminiEmulator) -> list[BaseRoute]:
    """ListModels, GetModel and countTokens (Gemini API)."""
    return [Route("/{version}/models", emu.gemini_endpoint(list_models), methods=["GET"]),
            Route("/{version}/models/{model}", emu.gemini_endpoint(get_model), methods=["GET"]),
            Route("/{version}/models/{model}:countTokens", emu.gemini_endpoint(count_tokens_endpoint),
                  methods=["POST"])]


def batch_routes(emu: GeminiEmulator) -> list[BaseRoute]:
    """The Batch API and the Files API it uses (``_emulator_batch``)."""
    return emu.batches.routes()


#: Each entry returns a family of routes; the emulator serves them all, in this order.
ROUTE_SETS: list[Callable[[GeminiEmulator], list[BaseRoute]]] = [batch_routes, generate_routes, model_routes]


class GeminiEmulator(Emulator):
    """Gemini's generateContent for the image models; see the module docstring."""

    name = "gemini"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                 api_keys: Any = None, image_scale: float | None = None, default_shape: str = "observed",
                 enforce_shutdowns: bool = False, today: dt.date | None = None, clock: Clock | None = None,
                 pixel_scale: float | None = None, batch_turnaround_s: float = 0.0,
                 batch_member_faults: FaultPlan | None = None, batch_file_results: str = "file",
                 batch_get_pitfall_bytes: int | None = None, missing_signature: str = "finish",
                 signature_bytes: int = 0) -> None:
        super().__init__(faults=faults, latency=latency, seed=seed, clock=clock, api_keys=api_keys)
        if missing_signature not in ("finish", "400"):
            raise ValueError(f"missing_signature must be 'finish' or '400', got {missing_signature!r}")
        self.missing_signature = missing_signature
        self.signature_bytes = int(signature_bytes)
        #: The Batch API and Files API routes (see ``_emulator_batch``).
        self.batches = BatchRoutes(self, turnaround_s=float(batch_turnaround_s), member_faults=batch_member_faults,
                                   file_results=batch_file_results, get_pitfall_bytes=batch_get_pitfall_bytes)
        image_scale = _renamed("pixel_scale", pixel_scale, image_scale)
        if not 0 < image_scale <= 1:
            raise ValueError(f"image_scale must be in (0, 1], got {image_scale!r}")
        if default_shape not in ("observed", "square"):
            raise ValueError(f"default_shape must be 'observed' or 'square', got {default_shape!r}")
        self.image_scale = image_scale
        self.default_shape = default_shape
        self.enforce_shutdowns = enforce_shutdowns
        self.today = today
        #: The last request bodies received (parsed JSON, as sent), newest last; for assertions.
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=16)
        self._numbers = itertools.count(1)
        #: Every model id served (GA and preview ids), to its spec.
        self.models: dict[str, ModelSpec] = {
            name: spec for spec in load_catalog() for name in spec.names if name.startswith("gemini-")}

    @property
    def pixel_scale(self) -> float:
        """The old name of `image_scale`."""
        return self.image_scale

    # -- routes and envelopes ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [route for route_set in ROUTE_SETS for route in route_set(self)]

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        if status == 429 and fault is not None and fault.retry_after is not None:
            return quota_error("gemini", fault.retry_after)
        if status == 429:
            return google_error(429, ERRORS["capacity"][2])
        return google_error(status, message)

    def reject_response(self, reject: Reject) -> Response:
        response = google_error(reject.status, reject.message, status=reject.code,
                                details=reject.fields.get("details"))
        response.headers.update(reject.headers)
        return response

    def route_error_response(self, request: Request, status: int) -> Response:
        if status == 404:
            return google_error(404, f"The requested URL {request.url.path} was not found on this server.")
        return google_error(405, f"Method {request.method} is not allowed for {request.url.path}.",
                            status="UNIMPLEMENTED")

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        return {}  # Google puts the hint in RetryInfo; a 429 never has Retry-After

    def next_number(self) -> int:
        """A fresh sequence number (response ids and the like)."""
        return next(self._numbers)

    # -- endpoints -------------------------------------------------------------------------------

    def gemini_endpoint(self, handler: Callable[..., Any]) -> Callable[[Request], Any]:
        """A Gemini API endpoint: the version checked, then `handler(self, request)`."""
        async def endpoint(request: Request) -> Response:
            self._check_version(request, GEMINI_VERSIONS)
            response: Response = await handler(self, request)
            return response
        return endpoint

    def generate_endpoint(self, api: str, *, stream: bool) -> Callable[[Request], Any]:
        versions = GEMINI_VERSIONS if api == "gemini" else VERTEX_VERSIONS

        async def endpoint(request: Request) -> Response:
            return await self._generate(request, api=api, versions=versions, stream=stream)
        return endpoint

    def authenticate(self, request: Request, api: str) -> None:
        """Check the caller's credentials as the API named `api` does, or raise `Reject`."""
        if api == "vertex-project":
            auth = request.headers.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                raise Reject(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                  "login cookie or other valid authentication credential.")
            return
        credential = self.api_keys.verify(read_header(request, "x-goog-api-key", query="key"))
        if credential.problem == "missing":
            raise Reject(403, "Method doesn't allow unregistered callers (callers without established identity). "
                              "Please use API Key or other form of API consumer identity to call this API.")
        if not credential.ok:
            message = "API key not valid. Please pass a valid API key."
            raise Reject(400, message, details=[
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message},
            ])

    # -- generateContent -------------------------------------------------------------------------

    async def _generate(self, request: Request, *, api: str, versions: tuple[str, ...], stream: bool) -> Response:
        started = self.clock.time()
        vertex = api != "gemini"
        version = self._check_version(request, versions)
        model_id = request.path_params["model"].removeprefix("models/")
        self.authenticate(request, api)
        spec = self._model(model_id, version, vertex=vertex)
        body = await self._body(request)
        settings = check_request(body, spec, vertex=vertex)
        missing = check_signatures(body, spec, seed=self.seed, status=self.missing_signature)
        if missing is not None:
            return await self._stream(request, missing, 0.0, {}) if stream else JSONResponse(missing, media_type=_JSON)
        prompt, input_images = prompt_of(body)
        self._scripted_error(prompt, spec)
        answer = build_answer(self, prompt, input_images, settings, spec, vertex=vertex)
        if vertex:
            answer.body["createTime"] = _stamp(started)
        headers = {"vary": "Origin, X-Origin, Referer"}
        if not vertex:
            headers["X-Gemini-Service-Tier"] = "standard"
        if stream:
            return await self._stream(request, answer.body, answer.megapixels, headers, usd=answer.usd)
        await self._draw(answer.megapixels, answer.usd, answer.body)
        headers["server-timing"] = f"gfet4t7; dur={round((self.clock.time() - started) * 1000)}"
        return JSONResponse(answer.body, headers=headers, media_type=_JSON)

    async def _draw(self, megapixels: float, usd: float, body: dict[str, Any]) -> None:
        """Generation time, then the charge: a caller gone before the image is ready pays nothing
        here, so the emulator's charges match the answers that were made."""
        await self.simulate_latency(megapixels)
        if usd:
            self.counters.charge(usd=usd, ref=body["responseId"])

    async def _stream(self, request: Request, body: dict[str, Any], megapixels: float,
                      headers: dict[str, str], *, usd: float = 0.0) -> Response:
        chunks = stream_chunks(body)
        if request.query_params.get("alt") != "sse":
            await self._draw(megapixels, usd, body)
            return JSONResponse(chunks, headers=headers, media_type=_JSON)

        async def draw() -> None:
            await self._draw(megapixels, usd, body)

        return StreamingResponse(sse_events(chunks, draw), media_type=SSE_MEDIA_TYPE, headers=headers)

    def _check_version(self, request: Request, versions: tuple[str, ...]) -> str:
        version: str = request.path_params["version"]
        if version not in versions:
            raise Reject(404, f"Method not found for API version {version}.")
        return version

    def model_for(self, request: Request) -> ModelSpec:
        """The model a Gemini API path names, or the API's 404."""
        return self._model(request.path_params["model"].removeprefix("models/"), request.path_params["version"],
                           vertex=False)

    async def read_body(self, request: Request) -> dict[str, Any]:
        """The request's JSON object in lowerCamelCase (kept as sent in `received`), or a 400."""
        return await self._body(request)

    def _model(self, model_id: str, version: str, *, vertex: bool) -> ModelSpec:
        spec = self.models.get(model_id)
        if spec is None:
            raise Reject(404, f"models/{model_id} is not found for API version {version}, or is not supported for "
                              "generateContent. Call ModelService.ListModels to see the list of available models "
                              "and their supported methods.")
        shutdown = spec.extra.get("shutdown")
        today = self.today or dt.datetime.fromtimestamp(self.clock.time(), dt.UTC).date()
        if self.enforce_shutdowns and not vertex and shutdown and shutdown <= today:
            replacement = spec.extra.get("replacement", "a current model")
            raise Reject(404, f"This model models/{model_id} is no longer available to new users. Please update "
                              f"your code to use {replacement}.")
        return spec

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise Reject(400, "Invalid JSON payload received. Unexpected token.") from None
        if not isinstance(body, dict):
            raise Reject(400, "Invalid JSON payload received. Expected an object.")
        self.received.append(body)
        camel: dict[str, Any] = camelize(body)
        return camel

    def _scripted_error(self, prompt: str, spec: ModelSpec) -> None:
        for name, kind, number in MARKER.findall(prompt):
            if name != "ERROR":
                continue
            kind = kind.lower()
            if kind == "quota":
                raise quota_reject(spec.id, float(number) if number else 34.0)
            if kind not in ERRORS:
                raise ValueError(f"unknown [[ERROR:...]] marker {kind!r}; use quota or one of {', '.join(ERRORS)}")
            code, status, message = ERRORS[kind]
            raise Reject(code, message, code=status)


def _stamp(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def _renamed(old: str, old_value: float | None, new_value: float | None, default: float = 1.0) -> float:
    """The value of an option given under its new name, or (with a warning) its old one."""
    if old_value is not None:
        warnings.warn(f"the {old!r} option is now called 'image_scale'", DeprecationWarning, stacklevel=3)
        if new_value is None:
            return old_value
    return new_value if new_value is not None else default


def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    **options: Any) -> GeminiEmulator:
    """The Gemini emulator (``imagegen emulate gemini``); ``options`` as in the module docstring."""
    return GeminiEmulator(faults=faults, latency=latency, seed=seed, **options)
