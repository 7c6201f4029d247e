"""A local, faithful emulator of Gemini's ``generateContent`` for the image models.

Serves, for every model in ``models.toml`` (GA and ``-preview`` ids):

- ``POST /{v1|v1beta}/models/{model}:generateContent`` (Gemini API; ``x-goog-api-key`` header
  or ``?key=``; no key: 403, a key outside ``api_keys``: 400 ``API_KEY_INVALID``);
- ``POST /{v1|v1beta1}/publishers/google/models/{model}:generateContent`` (Vertex AI express
  mode, API key) and ``.../projects/{p}/locations/{l}/publishers/google/models/{model}:...``
  (Vertex AI, any ``Authorization: Bearer`` token); Vertex answers omit ``index`` and add
  ``createTime`` and ``trafficType``.

Answers follow the recorded responses: lowerCamelCase JSON, standard base64 images of the
documented size for the ratio and size (PNG on 2.5 Flash Image, JPEG on 3.x; no ratio gives the
observed 1408x768 on 3.x), ``usageMetadata`` from the token table with
``total = prompt + candidates + thoughts``, ``thoughtSignature`` on the first part and on image
parts (3.x), thought parts when ``includeThoughts`` is set. Requests are validated as the API
does (unknown fields, missing contents, modalities, the proto-level and per-model ratio and size
rules, ``candidateCount``), with Google's error envelope. snake_case requests are accepted.

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
a 503 ``UNAVAILABLE`` (or its status), ``timeout`` a 504 after the delay. `refusal_fault`
scripts an HTTP-200 refusal through a plan: ``FaultPlan.script(refusal_fault("NO_IMAGE"))``.

``received`` keeps the last request bodies as sent, for tests. Options of `create_emulator`:
``api_keys`` (accepted keys; default any), ``pixel_scale`` (shrink images, e.g. for small
cassettes), ``default_shape`` (``"observed"`` or ``"square"`` when no ratio is sent),
``enforce_shutdowns`` (404 for models the Gemini API has retired).

Multi-turn (``_emulator_turns``): signatures are verifiable, and a request whose earlier model
turns lost or changed one is answered ``MISSING_THOUGHT_SIGNATURE`` (``missing_signature="400"``:
a 400 instead); ``signature_bytes`` pads signatures to a realistic size (real ones: 1-3 MB).
The Batch and Files APIs (``_emulator_batch``, as ``self.batches``): ``batch_turnaround_s`` on
``clock`` (a callable, default ``time.monotonic``), ``batch_member_faults``,
``batch_file_results`` and ``batch_get_pitfall_bytes``.
"""

from __future__ import annotations

import base64
import collections
import datetime as dt
import hashlib
import itertools
import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen import ModelSpec, Usage
from imagegen.testing import Emulator, Fault, FaultPlan, LatencyModel

from ._catalog import ANY_SIZE, expected_pixels, load_catalog, tokens_per_image
from ._emulator_batch import BatchRoutes
from ._emulator_shapes import (
    CONFIG_FIELDS,
    ERRORS,
    IMAGE_CONFIG_FIELDS,
    MARKER,
    PROTO_RATIOS,
    SIZE_SPELLINGS,
    TOP_FIELDS,
    VERTEX_IMAGE_CONFIG_FIELDS,
    Reject,
    camelize,
    check_fields,
    check_parts,
    google_error,
    prompt_of,
    quota_error,
    refusal_body,
    refusal_fault,
    refusal_kind,
    vertexify,
)
from ._emulator_turns import check_signatures, issue_signature
from ._pricing import cost_of

__all__ = ["GeminiEmulator", "create_emulator", "google_error", "refusal_fault"]


class GeminiEmulator(Emulator):
    """Gemini's generateContent for the image models; see the module docstring."""

    name = "gemini"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                 api_keys: set[str] | frozenset[str] | list[str] | None = None, pixel_scale: float = 1.0,
                 default_shape: str = "observed", enforce_shutdowns: bool = False,
                 today: dt.date | None = None, batch_turnaround_s: float = 0.0,
                 batch_member_faults: FaultPlan | None = None, batch_file_results: str = "file",
                 batch_get_pitfall_bytes: int | None = None, clock: Any = None,
                 missing_signature: str = "finish", signature_bytes: int = 0) -> None:
        super().__init__(faults=faults, latency=latency, seed=seed)
        if missing_signature not in ("finish", "400"):
            raise ValueError(f"missing_signature must be 'finish' or '400', got {missing_signature!r}")
        self.missing_signature = missing_signature
        self.signature_bytes = int(signature_bytes)
        #: The Batch API and Files API routes (see ``_emulator_batch``).
        self.batches = BatchRoutes(self, turnaround_s=float(batch_turnaround_s), clock=clock,
                                   member_faults=batch_member_faults, file_results=batch_file_results,
                                   get_pitfall_bytes=batch_get_pitfall_bytes)
        if not 0 < pixel_scale <= 1:
            raise ValueError(f"pixel_scale must be in (0, 1], got {pixel_scale!r}")
        if default_shape not in ("observed", "square"):
            raise ValueError(f"default_shape must be 'observed' or 'square', got {default_shape!r}")
        self.api_keys = frozenset(api_keys) if api_keys is not None else None
        self.pixel_scale = pixel_scale
        self.default_shape = default_shape
        self.enforce_shutdowns = enforce_shutdowns
        self.today = today
        #: The last request bodies received (parsed JSON, as sent), newest last; for assertions.
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=16)
        self._ids = itertools.count(1)
        self._models = {name: spec for spec in load_catalog() for name in spec.names if name.startswith("gemini-")}

    # -- routes and envelopes ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            *self.batches.routes(),
            Route("/{version}/models/{model}:generateContent", self._gemini, methods=["POST"]),
            Route("/{version}/publishers/google/models/{model}:generateContent", self._vertex_express,
                  methods=["POST"]),
            Route("/{version}/projects/{project}/locations/{location}/publishers/google/models/"
                  "{model}:generateContent", self._vertex_project, methods=["POST"]),
        ]

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        if status == 429 and fault is not None and fault.retry_after is not None:
            return quota_error("gemini", fault.retry_after)
        if status == 429:
            return google_error(429, ERRORS["capacity"][2])
        return google_error(status, message)

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        return {}  # Google puts the hint in RetryInfo; a 429 never has Retry-After

    # -- handlers -------------------------------------------------------------------------------

    async def _gemini(self, request: Request) -> Response:
        return await self._serve(request, api="gemini", versions=("v1", "v1beta"))

    async def _vertex_express(self, request: Request) -> Response:
        return await self._serve(request, api="vertex", versions=("v1", "v1beta1"))

    async def _vertex_project(self, request: Request) -> Response:
        return await self._serve(request, api="vertex-project", versions=("v1", "v1beta1"))

    async def _serve(self, request: Request, *, api: str, versions: tuple[str, ...]) -> Response:
        started = dt.datetime.now(dt.UTC)
        try:
            version = request.path_params["version"]
            model_id = request.path_params["model"].removeprefix("models/")
            if version not in versions:
                raise Reject(google_error(404, f"Method not found for API version {version}."))
            self._authenticate(request, api)
            spec = self._model(model_id, version, vertex=api != "gemini")
            body = await self._body(request)
            config = self._check(body, spec, vertex=api != "gemini")
            check_signatures(body, spec, seed=self.seed, status=self.missing_signature)
            prompt, input_images = prompt_of(body)
            self._scripted_error(prompt, spec)
            answer, megapixels, usd = self._answer(prompt, input_images, config, spec, vertex=api != "gemini")
        except Reject as reject:
            return reject.response
        await self.latency.sleep(megapixels)
        if usd:
            self.counters.charge(usd=usd, ref=answer["responseId"])
        if api != "gemini":
            answer["createTime"] = started.isoformat().replace("+00:00", "Z")
        elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
        headers = {"server-timing": f"gfet4t7; dur={round(elapsed * 1000)}", "vary": "Origin, X-Origin, Referer"}
        if api == "gemini":
            headers["X-Gemini-Service-Tier"] = "standard"
        return JSONResponse(answer, headers=headers, media_type="application/json; charset=UTF-8")

    def _authenticate(self, request: Request, api: str) -> None:
        if api == "vertex-project":
            auth = request.headers.get("authorization", "")
            if not auth.lower().startswith("bearer ") or not auth[7:].strip():
                raise Reject(google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 "
                                                "access token, login cookie or other valid authentication "
                                                "credential."))
            return
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            raise Reject(google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                            "identity). Please use API Key or other form of API consumer identity "
                                            "to call this API."))
        if self.api_keys is not None and key not in self.api_keys:
            details: list[dict[str, Any]] = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": "API key not valid. Please pass a valid API key."},
            ]
            raise Reject(google_error(400, "API key not valid. Please pass a valid API key.", details=details))

    def _model(self, model_id: str, version: str, *, vertex: bool) -> ModelSpec:
        spec = self._models.get(model_id)
        if spec is None:
            raise Reject(google_error(
                404, f"models/{model_id} is not found for API version {version}, or is not supported for "
                     "generateContent. Call ModelService.ListModels to see the list of available models and their "
                     "supported methods."))
        shutdown = spec.extra.get("shutdown")
        if self.enforce_shutdowns and not vertex and shutdown and shutdown <= (self.today or dt.date.today()):
            replacement = spec.extra.get("replacement", "a current model")
            raise Reject(google_error(
                404, f"This model models/{model_id} is no longer available to new users. Please update your "
                     f"code to use {replacement}."))
        return spec

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise Reject(google_error(400, "Invalid JSON payload received. Unexpected token.")) from None
        if not isinstance(body, dict):
            raise Reject(google_error(400, "Invalid JSON payload received. Expected an object."))
        self.received.append(body)
        camel: dict[str, Any] = camelize(body)
        return camel

    def _check(self, body: dict[str, Any], spec: ModelSpec, *, vertex: bool) -> dict[str, Any]:
        """Validate as the API does; return the effective image settings."""
        check_fields(body, TOP_FIELDS, "")
        if not body.get("contents"):
            raise Reject(google_error(400, "* GenerateContentRequest.contents: contents is not specified\n"))
        check_parts(body["contents"])
        config = body.get("generationConfig") or {}
        check_fields(config, CONFIG_FIELDS, "generation_config")
        modalities = config.get("responseModalities")
        for index, value in enumerate(modalities or []):
            if value not in ("TEXT", "IMAGE", "AUDIO"):
                raise Reject(google_error(
                    400, f"Invalid value at 'generation_config.response_modalities[{index}]' "
                         f"(type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), "
                         f"\"{value}\""))
        image_config = config.get("imageConfig") or {}
        allowed = VERTEX_IMAGE_CONFIG_FIELDS if vertex else IMAGE_CONFIG_FIELDS
        check_fields(image_config, allowed, "generation_config.image_config")
        ratio = image_config.get("aspectRatio")
        if ratio is not None and ratio not in PROTO_RATIOS:
            listed = ", ".join(f"'{r}'" for r in PROTO_RATIOS[:-1])
            raise Reject(google_error(400, f"aspect_ratio must be one of {listed}, or '{PROTO_RATIOS[-1]}'."))
        if ratio is not None and ratio not in spec.aspect_ratios:
            raise Reject(google_error(400, f"Aspect ratio {ratio} is not supported for this model."))
        size = image_config.get("imageSize")
        if size is not None and size not in SIZE_SPELLINGS:
            raise Reject(google_error(
                400, f"Invalid image size {size}. Supported values are: 1K, 2K, 4K, 512, 512P, 512PX."))
        size = SIZE_SPELLINGS.get(size) if size is not None else None
        if not spec.sizes:
            size = None  # 2.5 Flash Image accepts any valid spelling and ignores it
        elif size is not None and size not in spec.sizes:
            raise Reject(google_error(400, f"Image size {size} is not supported for this model."))
        if int(config.get("candidateCount") or 1) > 1:
            raise Reject(google_error(400, "Multiple candidates is not enabled for this model."))
        thinking = config.get("thinkingConfig") or {}
        # proto3 JSON takes either spelling of a field name; google-genai sends include_thoughts.
        include = thinking.get("includeThoughts", thinking.get("include_thoughts"))
        return {"ratio": ratio, "size": size or spec.default_size, "modalities": modalities,
                "include_thoughts": bool(include)}

    def _scripted_error(self, prompt: str, spec: ModelSpec) -> None:
        for name, kind, number in MARKER.findall(prompt):
            if name != "ERROR":
                continue
            kind = kind.lower()
            if kind == "quota":
                raise Reject(quota_error(spec.id, float(number) if number else 34.0))
            if kind not in ERRORS:
                raise ValueError(f"unknown [[ERROR:...]] marker {kind!r}; use quota or one of {', '.join(ERRORS)}")
            code, status, message = ERRORS[kind]
            raise Reject(google_error(code, message, status=status))

    # -- answers ---------------------------------------------------------------------------------

    def _next_id(self) -> str:
        digest = hashlib.sha256(f"gemini:{self.seed}:{next(self._ids)}".encode()).digest()
        return base64.urlsafe_b64encode(digest[:17]).decode().rstrip("=")

    def _signature(self, response_id: str, index: int) -> str:
        return issue_signature(self.seed, response_id, index, size=self.signature_bytes)

    def _pixels(self, spec: ModelSpec, config: dict[str, Any]) -> tuple[int, int]:
        ratio = config["ratio"] or ("1:1" if self.default_shape == "square" else None)
        width, height = expected_pixels(spec, ratio, config["size"])
        return max(8, round(width * self.pixel_scale)), max(8, round(height * self.pixel_scale))

    def _answer(self, prompt: str, input_images: int, config: dict[str, Any], spec: ModelSpec,
                *, vertex: bool) -> tuple[dict[str, Any], float, float]:
        """The JSON answer, the megapixels generated (for latency) and the USD to charge."""
        response_id = self._next_id()
        extra = spec.extra["emulator"]
        markers = {name if not kind else f"{name}:{kind}" for name, kind, _ in MARKER.findall(prompt)}
        prompt_tokens = max(1, math.ceil(len(prompt) / 4))
        image_prompt_tokens = input_images * int(spec.extra.get("input_tokens_per_image", 258))
        thoughts = int(extra["thoughts_tokens"])
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens + image_prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]
            + ([{"modality": "IMAGE", "tokenCount": image_prompt_tokens}] if input_images else []),
        }
        refusal = refusal_kind(markers)
        if refusal is not None:
            if thoughts and not refusal.startswith("BLOCK"):
                usage["thoughtsTokenCount"] = thoughts
            usage["totalTokenCount"] = usage["promptTokenCount"] + usage.get("thoughtsTokenCount", 0)
            body = refusal_body(refusal, model=spec.id, response_id=response_id, usage=usage)
            if vertex:
                vertexify(body)
            return body, 0.0, 0.0
        parts, images, text_tokens = self._parts(prompt, markers, config, spec, response_id)
        width, height = self._pixels(spec, config)
        image_tokens = images * tokens_per_image(spec, config["size"] if spec.sizes else ANY_SIZE)
        candidates = image_tokens + text_tokens + int(extra["hidden_output_tokens"])
        usage["candidatesTokenCount"] = candidates
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image_tokens}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = usage["promptTokenCount"] + candidates + thoughts
        usage["serviceTier" if not vertex else "trafficType"] = "standard" if not vertex else "ON_DEMAND"
        body = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": usage, "modelVersion": spec.id, "responseId": response_id}
        if vertex:
            vertexify(body)
        billed = Usage(input_tokens=usage["promptTokenCount"], output_tokens=candidates + thoughts,
                       image_tokens=image_tokens)
        return body, images * width * height / 1e6, cost_of(billed, spec).usd or 0.0

    def _parts(self, prompt: str, markers: set[str], config: dict[str, Any], spec: ModelSpec,
               response_id: str) -> tuple[list[dict[str, Any]], int, int]:
        """Content parts: thoughts (if asked), captions (if TEXT is allowed) and images."""
        extra = spec.extra["emulator"]
        mime = spec.extra["output_mime"]
        fmt = mime.split("/")[1]
        width, height = self._pixels(spec, config)
        text_allowed = config["modalities"] is None or "TEXT" in config["modalities"]
        parts: list[dict[str, Any]] = []
        if config["include_thoughts"] and extra["thoughts_tokens"]:
            parts.append({"text": "**Composing the scene**\n\nI am placing the subject and checking the layout.",
                          "thought": True})
            interim = self.image(max(8, width // 4), max(8, height // 4), fmt)
            parts.append({"inlineData": {"mimeType": mime, "data": base64.b64encode(interim).decode()},
                          "thought": True})
        count = 2 if "TWO_IMAGES" in markers else 1
        captions = [f"Here is the picture: {prompt[:80].strip()}", "And a second take on the same idea."]
        text_tokens = 0
        for index in range(count):
            if text_allowed and (extra["caption"] or count > 1):
                parts.append({"text": captions[index]})
                text_tokens += math.ceil(len(captions[index]) / 4)
            data = base64.b64encode(self.image(width, height, fmt)).decode()
            parts.append({"inlineData": {"mimeType": mime, "data": data}})
        if extra["signatures"]:
            parts[0]["thoughtSignature"] = self._signature(response_id, 0)
            for index, part in enumerate(parts):
                if "inlineData" in part:
                    part["thoughtSignature"] = self._signature(response_id, index)
        return parts, count, text_tokens


def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    **options: Any) -> GeminiEmulator:
    """The Gemini emulator (``imagegen emulate gemini``); ``options`` as in the module docstring."""
    return GeminiEmulator(faults=faults, latency=latency, seed=seed, **options)
