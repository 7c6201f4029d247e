"""The ``gemini`` provider: Gemini's ``generateContent`` for the "Nano Banana" image models,
through the google-genai SDK, on the provider's own httpx clients.

The SDK's API client makes each call (URL and API version, API key or Google credentials,
timeout, its ``APIError`` for error answers; with an API key it builds URL and headers once per
model and the provider's httpx client sends them); the request JSON is built in ``_wire`` and
the raw answer read there too, which saves the SDK's request and response models (over a millisecond a
call, and they drop ``finishMessage``). ``generate_content`` is the fallback for an SDK release
without that client.

Gemini answers synchronously (a ``SynchronousProvider``): ``generate``/``edit`` make one call and
report the finished job through ``on_submit``, and ``submit`` returns an already-succeeded job.
The core's job store keeps that job, which is how ``status()`` answers later, from any process.

Configuration (``[providers.gemini]``)::

    api_key = "env:GEMINI_API_KEY"   # or GEMINI_API_KEY / GOOGLE_API_KEY in the environment
    base_url = "http://127.0.0.1:8701"   # an emulator or proxy; default: Google
    model = "gemini-3-pro-image"
    vertexai = true                  # Vertex AI: project + location (Google credentials), or
    project = "my-project"           #   express mode: vertexai = true with an api_key only
    location = "global"

Importing this module is cheap: google-genai is imported on the first call.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sys
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from imagegen import (
    AuthenticationError,
    ConfigurationError,
    Cost,
    ImageGenError,
    ImageRequest,
    ImageResult,
    InvalidRequestError,
    Job,
    MissingCredentialsError,
    ModelSpec,
    PermissionDeniedError,
    ProviderTimeoutError,
)
from imagegen.provider import (
    ErrorDetails,
    ErrorReply,
    PreparedPost,
    ProviderSettings,
    StatusRule,
    SynchronousProvider,
    shared_ssl_context,
)

from . import _conversation, _wire
from ._catalog import load_catalog
from ._pricing import estimate_cost

if TYPE_CHECKING:  # pragma: no cover
    from google import genai

    from ._batch import GeminiBatches

__all__ = ["GeminiProvider", "GeminiSettings"]

#: The API version is pinned, never left to the SDK. google-genai 3.x defaults to ``v1``, but
#: every recorded image call (and Google's REST docs) use ``v1beta``, and ``imageConfig`` on
#: ``v1`` is only assumed to work; an SDK upgrade must not silently move the endpoint.
GEMINI_API_VERSION = "v1beta"
#: Vertex AI: the SDK's own default and the version of every recorded Vertex image call.
VERTEX_API_VERSION = "v1beta1"
#: Per-request timeouts: 3 Pro at 4K takes ~38 s in live calls, with spikes (docs/providers/gemini.md).
SMALL_IMAGE_TIMEOUT_S = 90.0
LARGE_IMAGE_TIMEOUT_S = 180.0
_SMALL_SIZES = frozenset({"512", "1K"})
_MODALITIES = frozenset({"TEXT", "IMAGE"})
_THINKING_LEVELS = ("minimal", "low", "medium", "high")


class GeminiSettings(ProviderSettings):
    """``[providers.gemini]``: the common settings plus Vertex AI and the API version."""

    #: Call Vertex AI instead of the Gemini Developer API.
    vertexai: bool = False
    #: Vertex AI project; with it, Google credentials (ADC) authenticate. Without it and with
    #: an ``api_key``, Vertex AI runs in express mode.
    project: str | None = None
    #: Vertex AI location; ``global`` when unset (3 Pro Image is served only there).
    location: str | None = None
    #: Override the pinned API version (``v1beta`` on Gemini, ``v1beta1`` on Vertex AI).
    api_version: str | None = None


class GeminiProvider(SynchronousProvider):
    """Google Gemini image generation (``generateContent``) through google-genai."""

    name = "gemini"
    display_name = "Google Gemini (Nano Banana)"
    Settings = GeminiSettings
    # GEMINI_API_KEY first, as Google's docs name it. (google-genai alone prefers GOOGLE_API_KEY
    # when both are set; imagegen passes the key explicitly, so only this order applies.)
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    # Checked in __init__: Vertex AI with a project authenticates with Google credentials.
    requires_api_key = False
    default_base_url = "https://generativelanguage.googleapis.com"
    default_timeout = SMALL_IMAGE_TIMEOUT_S
    emulator = "imagegen_gemini.emulator:create_emulator"
    status_errors: ClassVar[Mapping[int, StatusRule]] = {
        401: StatusRule(AuthenticationError, "check GEMINI_API_KEY or the configured api_key"),
        403: StatusRule(PermissionDeniedError, "the key or project may not use this model"),
        504: StatusRule(ProviderTimeoutError, "retry, perhaps with a smaller size or a longer timeout"),
    }
    #: Send through the SDK's API client with imagegen's own request JSON (False: the SDK's
    #: public ``generate_content``; both send the same request).
    sdk_fast_path = True

    settings: GeminiSettings

    def __init__(self, *, instance_name: str, settings: ProviderSettings, http: httpx.AsyncClient) -> None:
        super().__init__(instance_name=instance_name, settings=settings, http=http)
        if self.api_key is None and not (self.settings.vertexai and self.settings.project):
            raise MissingCredentialsError(
                f"provider {instance_name!r} needs an API key: set GEMINI_API_KEY or GOOGLE_API_KEY, or "
                f"api_key = \"env:YOUR_VAR\" under [providers.{instance_name}]; for Vertex AI with Google "
                "credentials set vertexai = true and project = \"...\" instead")
        #: One SDK client per timeout (90 s up to 1K, 180 s above, or the configured one).
        self._genai: dict[float, genai.Client] = {}
        #: Each SDK client's API client, when the fast path can use it (None: it cannot).
        self._api_clients: dict[int, Any] = {}
        #: (API client, path) -> the POST with the URL, headers and timeout the SDK builds for it.
        self._prepared: dict[tuple[int, str], PreparedPost] = {}
        self._sync_http: httpx.Client | None = None

    @functools.cached_property
    def vendor_batches(self) -> GeminiBatches:
        """Gemini's Batch API (``Client.submit_batch``); see ``_batch``."""
        from ._batch import GeminiBatches

        return GeminiBatches(self)

    def conversation_of(self, job: Job) -> list[dict[str, Any]]:
        """What a finished session turn adds to the conversation (``Client.session``)."""
        return _conversation.restore(job)

    # -- data -------------------------------------------------------------------------------

    @classmethod
    def models(cls) -> list[ModelSpec]:
        return list(load_catalog())

    @property
    def api_version(self) -> str:
        """The pinned API version, or the configured one."""
        default = VERTEX_API_VERSION if self.settings.vertexai else GEMINI_API_VERSION
        return self.settings.api_version or default

    # -- before any network call ------------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        # The kit refuses a size for a single-size model: the API would ignore it silently.
        where = f"{self.instance_name}/{spec.id}"
        warnings = super().validate(request, spec)
        if request.seed is not None:
            warnings.append(f"{where} accepts a seed but does not promise reproducible images")
        options = request.options
        modalities = options.get("response_modalities")
        if modalities is not None and (
                not isinstance(modalities, (list, tuple)) or not set(modalities) <= _MODALITIES
                or "IMAGE" not in modalities):
            raise InvalidRequestError(
                f"option response_modalities for {where} must list \"IMAGE\" and optionally \"TEXT\", "
                f"not {modalities!r}")
        for flag in ("include_thoughts", "google_search"):
            if flag in options and not isinstance(options[flag], bool):
                raise InvalidRequestError(f"option {flag} for {where} must be true or false")
        level = options.get("thinking_level")
        if level is not None and (not isinstance(level, str) or level.lower() not in _THINKING_LEVELS):
            raise InvalidRequestError(
                f"option thinking_level for {where} must be one of {', '.join(_THINKING_LEVELS)}, not {level!r}")
        return warnings

    def estimate(self, request: ImageRequest, spec: ModelSpec) -> Cost:
        return estimate_cost(request, spec)

    def request_timeout(self, request: ImageRequest, spec: ModelSpec) -> float:
        """Seconds one call may take: the configured timeout, else 90 s up to 1K and 180 s above."""
        if self.settings.timeout:
            return self.settings.timeout
        size = spec.effective_size(request)
        return SMALL_IMAGE_TIMEOUT_S if size is None or size in _SMALL_SIZES else LARGE_IMAGE_TIMEOUT_S

    # -- I/O ---------------------------------------------------------------------------------

    async def wait(self, job: Job, *, deadline: float) -> ImageResult:
        if "#" in job.native_id:  # a vendor batch member, resumed by a call that carries its key
            return await self.vendor_batches.wait_member(job, self.model_spec(job.model), deadline=deadline)
        return await super().wait(job, deadline=deadline)

    async def call(self, request: ImageRequest, spec: ModelSpec, *, deadline: float) -> ImageResult:
        if request.n != 1:
            raise InvalidRequestError(
                f"{self.instance_name} makes one image per call; ask the Client for n={request.n}, which "
                "splits it into calls")
        images = await self.input_images(request)
        limit = self.request_timeout(request, spec)
        remaining = max(1.0, deadline - time.monotonic())
        body = _wire.build_body(request, images)
        del images
        # A session turn: the earlier turns go first, exactly as they were (signatures and all).
        user_turn = _conversation.user_turn(body, request) if request.conversation is not None else None
        if request.conversation:
            body["contents"] = [*request.conversation, *body["contents"]]
        client = self._client(limit)
        # The SDK client's own timeout is ``limit``; a nearer deadline is enforced here. When the
        # HTTP timeout is the nearer one, the margin lets it fire first, with its clearer error.
        with self.translating():
            async with asyncio.timeout(remaining if remaining < limit else limit + 5.0):
                answer = await self._post(client, spec, body)
        del body
        # The SDK hands over a body only for HTTP 200. Parse it, then drop every other copy of it
        # before decoding images: a 4K answer is megabytes of base64 (benchmarks/gemini_memory.py).
        with self.parsing("generateContent answer", status_code=200):
            data = _wire.parse_body(answer)
            del answer
            model_turn = _conversation.model_turn(data) if user_turn is not None else None
            result = _wire.read_answer(data, spec, provider=self.instance_name)
        if user_turn is not None:
            result.metadata[_conversation.KEY] = [user_turn, model_turn]
        result.job_id = self.job_id(result.metadata["response_id"] or uuid.uuid4().hex)
        return result

    async def _post(self, client: genai.Client, spec: ModelSpec, body: dict[str, Any]) -> str | bytes | None:
        """POST ``generateContent`` through the SDK's API client (see the module's docstring) or, for
        a google-genai release without it, the public ``generate_content``; return the 200's raw body."""
        api = self._api_clients.get(id(client), False)
        if api is False:
            api = self._api_clients[id(client)] = _api_client_of(client) if self.sdk_fast_path else None
        if api is None:
            response = await client.aio.models.generate_content(model=spec.id, **_wire.sdk_arguments(body))
            http_response, response.sdk_http_response = response.sdk_http_response, None
            return http_response.body if http_response else None
        model = f"publishers/google/models/{spec.id}" if api.vertexai else f"models/{spec.id}"
        path = f"{model}:generateContent"
        if not _signs_each_request(api):
            return await self._send_prepared(api, path, body)
        return (await api.async_request("post", path, body)).body  # type: ignore[no-any-return]

    async def _send_prepared(self, api: Any, path: str, body: dict[str, Any]) -> bytes:
        """What ``api.async_request`` does for a key-authenticated call, with the URL, headers
        and timeout the SDK built once for this path and client: its per-call wrapper (tenacity
        with one attempt, which inspects the callable's signature on every call, and a fresh
        request and header dict) cost as much as httpx's whole client layer. The wire bytes
        are the SDK's (``json.dumps`` of the body, its headers: tests compare both paths) and
        an error answer goes through the SDK's own ``APIError``."""
        post = self._prepared.get((id(api), path))
        if post is None:
            built = api._build_request("post", path, {}, None)
            post = self._prepared[(id(api), path)] = PreparedPost(
                self.http, api._httpx_url(built.url, is_async=True), headers=built.headers, timeout=built.timeout)
        response = await post.send(json.dumps(body).encode("utf-8"))
        await _sdk_errors().APIError.raise_for_async_response(response)
        return response.content

    def _client(self, timeout: float) -> genai.Client:
        """The SDK client for calls of this timeout, built once, on the provider's httpx clients,
        with SDK retries off (imagegen's router retries and honours ``RetryInfo``, which the SDK
        ignores)."""
        if timeout in self._genai:
            return self._genai[timeout]
        try:
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise ConfigurationError(
                "the gemini provider needs google-genai: pip install 'imagegen[gemini]'") from exc
        settings = self.settings
        if self._sync_http is None:
            self._sync_http = httpx.Client(timeout=self.default_timeout, follow_redirects=False,
                                           verify=shared_ssl_context())
        options = types.HttpOptions(
            base_url=settings.base_url or (None if settings.vertexai else self.default_base_url),
            api_version=self.api_version,
            timeout=int(timeout * 1000),  # milliseconds
            httpx_client=self._sync_http,
            httpx_async_client=self.http,
            retry_options=types.HttpRetryOptions(attempts=1),
            # The SDK would load the CA bundle again for a websocket context imagegen never uses.
            async_client_args={"ssl": shared_ssl_context()},
        )
        auth: dict[str, Any] = {"vertexai": True} if settings.vertexai else {}
        if settings.vertexai and settings.project:  # Google credentials
            auth.update(project=settings.project, location=settings.location or "global")
        else:  # an API key: the Gemini API, or Vertex AI's express mode
            auth["api_key"] = self.api_key.get_secret_value() if self.api_key is not None else None
        try:
            client = genai.Client(**auth, http_options=options)
        except ValueError as exc:
            raise ConfigurationError(f"{self.instance_name}: google-genai refused the settings: {exc}") from None
        self._genai[timeout] = client
        return client

    # -- errors --------------------------------------------------------------------------------

    def read_error(self, reply: ErrorReply) -> ErrorDetails:
        model = reply.path.rpartition("/")[2].partition(":")[0]
        spec = next((s for s in self.models() if model in s.names), None)
        return _wire.read_google_error(reply, replacement=spec.extra.get("replacement") if spec else None)

    def translate_error(self, exc: BaseException) -> ImageGenError | None:
        """google-genai's ``APIError`` (any non-200 answer) through the status table; a Google
        credentials failure as what to set up; transport failures as the kit knows them."""
        errors = sys.modules.get("google.genai.errors")
        if errors is not None and isinstance(exc, errors.APIError):
            try:  # the model called, from the URL (".../models/<id>:generateContent")
                path = exc.response.request.url.path
            except (AttributeError, RuntimeError):  # an error built without its answer
                path = f"models/{self.settings.model or self.default_model()}"
            body = exc.details if isinstance(exc.details, dict) else None
            return self.status_error(ErrorReply(int(exc.code or 0), body=body, path=path,
                                                text=_wire.error_message(str(exc.message or exc.status or ""))))
        if type(exc).__module__.startswith("google.auth"):
            return MissingCredentialsError(
                f"{self.instance_name}: Vertex AI with a project needs Google credentials ({type(exc).__name__}: "
                f"{str(exc)[:200]}); run `gcloud auth application-default login` or set "
                "GOOGLE_APPLICATION_CREDENTIALS")
        return super().translate_error(exc)

    async def aclose(self) -> None:
        if self._sync_http is not None:
            self._sync_http.close()
        self._genai = {}
        self._api_clients = {}
        self._prepared = {}
        self._sync_http = None


@functools.cache
def _sdk_errors() -> Any:
    from google.genai import errors

    return errors


def _signs_each_request(api: Any) -> bool:
    """Vertex AI with Google credentials adds a fresh access token to every request (the SDK's
    own path does that); so does an SDK release without the request builder used here."""
    if not (hasattr(api, "_build_request") and hasattr(api, "_httpx_url")):
        return True
    return bool(api.vertexai and (api.project or api.location) and not api.api_key)


def _api_client_of(client: genai.Client) -> Any:
    """The SDK's async-capable API client, if this google-genai release has the one we know."""
    api = getattr(client.aio, "_api_client", None)
    send = getattr(api, "async_request", None)
    if send is None or not hasattr(api, "vertexai"):
        return None
    try:
        params = list(inspect.signature(send).parameters)
    except (TypeError, ValueError):
        return None
    return api if params[:3] == ["http_method", "path", "request_dict"] else None
