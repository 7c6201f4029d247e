"""The Wireflow provider: a request becomes a graph, the graph a saved workflow, and each
request one execution of it, polled until done and downloaded.

Lifecycle of one call:

1. input images given as bytes are uploaded (``POST /media/upload``) to get URLs;
2. the graph is built from the node table (`_graph`); the workflow for its shape is
   looked up in the workflow cache, or created once (``POST /workflows``);
3. ``POST /workflows/{id}/execute`` with the full graph (P6), or ``POST .../run`` with
   ``{"inputs": ...}`` (P5) when ``execute_mode = "run"``, or, with ``webhook_id`` set,
   ``POST /workflow/{webhookId}/trigger`` without a key (P7). Every one carries an
   ``Idempotency-Key`` (below), and is retried with the same key after a 429, a 5xx,
   a dropped connection or an unreadable answer, so it is charged at most once;
4. the Job returned is ``running``; ``status()`` needs only the execution id, so any
   process can poll it (``GET /workflows/executions/{id}/poll``) and, once COMPLETED,
   download the outputs (size cap, content type and decode checks; URLs kept).

Idempotency key: ``imagegen-`` + a hash of the request's content and a nonce. The nonce is
``options["idempotency_key"]`` when the caller gives one (the same key and request then
replay the first execution for 24 h, even from another process), else a random value drawn
once per submit, which every retry inside that submit reuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urljoin, urlsplit

import httpx

from imagegen import (
    Cost,
    ImageGenError,
    ImageRequest,
    ImageResult,
    InputImage,
    InvalidRequestError,
    InvalidResponseError,
    Job,
    JobFailedError,
    ModelSpec,
    NoImageReturnedError,
    NotFoundError,
    PollSchedule,
    Provider,
    ProviderSettings,
    ProviderUnavailableError,
    RateLimitError,
    Usage,
)
from imagegen._http import current_scope, describe_body
from imagegen._models import make_job_id
from imagegen._outputs import fetch_outputs
from imagegen._provider import AdaptivePollSchedule

from ._catalog import load_catalog, model_specs
from ._graph import Graph, ParamLocation, build_graph
from ._protocol import error_from, execution_id_from, parse_poll
from ._ratelimit import (
    EXECUTIONS_PER_MINUTE,
    PLAN_LIMITS,
    RateLimitTooLong,
    WindowLimiter,
)
from ._workflows import WorkflowCache, cache_key

__all__ = ["WireflowAPIError", "WireflowProvider", "WireflowSettings"]

_REDIRECTS = (301, 302, 307, 308)
_MAX_REDIRECTS = 5


class WireflowSettings(ProviderSettings):
    """``[providers.wireflow]`` keys beyond the common ones."""

    #: Your plan (P8: free, starter, pro, enterprise; P11: team): sets requests/min.
    plan: Literal["free", "starter", "pro", "team", "enterprise"] | None = None
    #: Executions per minute; Wireflow caps every plan at 10.
    executions_per_minute: float | None = None
    #: Length of the rate-limit window in seconds (Wireflow does not say; 60 fits "per minute").
    rate_window_s: float = 60.0
    #: Trigger this saved workflow's webhook instead of creating workflows (P7).
    webhook_id: str | None = None
    #: ``execute``: send the full graph to /execute (P6); ``run``: send inputs to /run (P5).
    execute_mode: Literal["execute", "run"] = "execute"
    #: Where node values go (C5): ``config`` (client scripts), ``params`` (docs), ``data`` (P6).
    param_location: ParamLocation = "config"
    #: The poll path (C2): P14 writes ``/executions/{id}/poll``, P1 ``/workflows/executions/{id}``.
    poll_path: str = "/workflows/executions/{id}/poll"
    #: ``[initial, factor, cap]`` seconds; default the documented 1 s, x1.5, 10 s.
    poll_schedule: tuple[float, float, float] | None = None
    #: HTTP-level retries of one call after 429/5xx/dropped connections (same Idempotency-Key).
    #: Off by default: imagegen's router retries whole calls (``[retry]``) with the same key.
    max_retries: int = 0
    #: First retry delay when the server gives no hint; doubles per retry, capped at 8 s.
    retry_backoff_s: float = 0.5
    #: Longest wait for a rate-limit slot or a server's wait hint before raising RateLimitError.
    max_rate_wait_s: float = 120.0
    #: Remember workflow ids in ``<data dir>/wireflow/workflows.json`` for other processes.
    persist_workflows: bool = True


class WireflowAPIError(Exception):
    """A non-2xx answer, before translation: status, headers and the parsed body."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        try:
            self.body: Any = json.loads(response.content)
            self.raw_text = ""
        except ValueError:
            self.body, self.raw_text = None, describe_body(response)
        super().__init__(f"HTTP {self.status_code}")


class WireflowProvider(Provider):
    """Wireflow (wireflow.ai): node-graph workflows running Nano Banana and other models."""

    name: ClassVar[str] = "wireflow"
    display_name: ClassVar[str] = "Wireflow"
    Settings: ClassVar[type[ProviderSettings]] = WireflowSettings
    api_key_env: ClassVar[tuple[str, ...]] = ("WIREFLOW_API_KEY",)
    default_base_url: ClassVar[str] = "https://www.wireflow.ai/api/v1"
    default_timeout: ClassVar[float] = 60.0
    #: Polls at six quantiles of Nano Banana 2's latency on Wireflow over 1K and 4K outputs
    #: ("4-15 s at 1K, 10-20 s at 4K"), then the documented backoff (start 1 s, x1.5, cap 10 s;
    #: P13, seeds 000/002). Against the documented schedule alone it spends fewer polls per
    #: job (2.7 vs 4.1 at 1K, 5.3 vs 5.8 at 4K) and sees the end sooner (1.5 vs 2.1 s, 1.9 vs
    #: 3.6 s on average): benchmarks/results/wireflow_polling.md. ``poll_schedule`` in the
    #: settings replaces it.
    poll_schedule: ClassVar[PollSchedule | AdaptivePollSchedule] = AdaptivePollSchedule(
        times=(4.5, 6.3, 8.0, 12.6, 16.8, 21.2), then=PollSchedule(1.0, 1.5, 10.0))
    emulator: ClassVar[str | None] = "imagegen_wireflow.emulator:create_emulator"

    settings: WireflowSettings

    def __init__(self, *, instance_name: str, settings: ProviderSettings, http: httpx.AsyncClient) -> None:
        super().__init__(instance_name=instance_name, settings=settings, http=http)
        s = self.settings
        if s.poll_schedule is not None:
            self.poll_schedule = PollSchedule(*s.poll_schedule)  # type: ignore[misc]
        plan_rpm, plan_epm = PLAN_LIMITS.get(s.plan or "", (None, EXECUTIONS_PER_MINUTE))
        self.limits = {
            "request": WindowLimiter(s.requests_per_minute or plan_rpm, window_s=s.rate_window_s),
            "execution": WindowLimiter(s.executions_per_minute or plan_epm, window_s=s.rate_window_s),
        }
        self.workflows = WorkflowCache.default() if s.persist_workflows else WorkflowCache(None)
        self._creating: dict[str, asyncio.Lock] = {}
        self._uploads: dict[str, str] = {}

    @classmethod
    def models(cls) -> list[ModelSpec]:
        return model_specs()

    # -- before any network call ---------------------------------------------------------

    def validate(self, request: ImageRequest, spec: ModelSpec) -> list[str]:
        warnings = super().validate(request, spec)
        key = request.options.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not key.strip() or len(key) > 200):
            raise InvalidRequestError("options.idempotency_key must be a non-empty string of at most 200 characters")
        if key is not None and request.n > spec.max_images_per_call:
            raise InvalidRequestError(
                f"options.idempotency_key names one execution, but n={request.n} needs several "
                f"({self.instance_name}/{spec.id} makes at most {spec.max_images_per_call} per execution); "
                "lower n or drop the key")
        if self.settings.webhook_id:
            warnings.append(f"{self.instance_name} triggers webhook {self.settings.webhook_id}: the saved "
                            "workflow decides the model; prompt and params are sent as trigger data")
        return warnings

    def estimate(self, request: ImageRequest, spec: ModelSpec) -> Cost:
        cost = super().estimate(request, spec)
        if cost.credits is not None:
            cost = cost.model_copy(update={"breakdown": {spec.extra["node_type"]: cost.credits}})
        return cost

    # -- submit ---------------------------------------------------------------------------

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        urls = [await self._input_url(image) for image in request.images]
        graph = build_graph(request, spec, urls, where=self.settings.param_location)
        key = self.idempotency_key(request, spec)
        headers = {"Idempotency-Key": key}
        workflow_id: str | None = None
        if self.settings.webhook_id:
            path = f"/workflow/{quote(self.settings.webhook_id, safe='')}/trigger"
            body = await self._call("POST", path, json=graph.trigger_data, headers=headers,
                                    kind="execution", auth=False)
        else:
            workflow_id, body = await self._execute(graph, headers)
        execution_id = execution_id_from(body)
        return self.job(execution_id, "running", model=spec.id, metadata={
            "workflow_id": workflow_id, "webhook_id": self.settings.webhook_id, "idempotency_key": key,
            "node_type": graph.node_type, "estimated_credits": graph.credits,
        })

    def idempotency_key(self, request: ImageRequest, spec: ModelSpec) -> str:
        """Stable for one logical request: content hash + caller's key, or a per-submit nonce."""
        content = request.model_dump(mode="json", include={"prompt", "operation", "aspect_ratio", "size", "n",
                                                           "seed", "output_format"})
        content.update(model=spec.id, images=[image.sha256 for image in request.images])
        # The router gives every logical request an idempotency key and keeps it across its
        # retries, so a retried execute carries the same Idempotency-Key.
        nonce = request.options.get("idempotency_key") or request.idempotency_key or uuid.uuid4().hex
        digest = hashlib.sha256((json.dumps(content, sort_keys=True) + "\0" + nonce).encode()).hexdigest()
        return f"imagegen-{digest[:40]}"

    async def _execute(self, graph: Graph, headers: dict[str, str]) -> tuple[str, Any]:
        run = self.settings.execute_mode == "run"
        shape = graph.params_key if run else graph.shape_key
        for attempt in (1, 2):
            workflow_id = await self._workflow_for(graph, shape)
            try:
                if run:
                    body = await self._call("POST", f"/workflows/{quote(workflow_id, safe='')}/run",
                                            json={"inputs": graph.run_inputs}, headers=headers, kind="execution")
                else:
                    body = await self._call("POST", f"/workflows/{quote(workflow_id, safe='')}/execute",
                                            json={"nodes": graph.nodes, "edges": graph.edges},
                                            headers=headers, kind="execution")
                return workflow_id, body
            except NotFoundError:
                if attempt == 2:
                    raise
                # Deleted on Wireflow's side since we cached it: create it again, once.
                self.workflows.forget(self._cache_key(shape))
        raise AssertionError("unreachable")  # pragma: no cover

    def _cache_key(self, shape: str) -> str:
        secret = self.api_key.get_secret_value() if self.api_key is not None else None
        return cache_key(self.base_url, secret, shape)

    async def _workflow_for(self, graph: Graph, shape: str) -> str:
        key = self._cache_key(shape)
        if (found := self.workflows.get(key)) is not None:
            return found
        # Concurrent submits of a new shape create one workflow, not one each.
        lock = self._creating.setdefault(key, asyncio.Lock())
        async with lock:
            if (found := self.workflows.get(key)) is not None:
                return found
            body = await self._call("POST", "/workflows",
                                    json=graph.workflow_body(f"imagegen {graph.node_type} {shape[:8]}"),
                                    idempotent=False)
            created = body.get("data", body) if isinstance(body, dict) else None
            created = created.get("workflow", created) if isinstance(created, dict) else None
            if not isinstance(created, dict) or not created.get("id"):
                raise InvalidResponseError(f"{self.instance_name}: creating a workflow returned no id",
                                           provider=self.instance_name)
            self.workflows.put(key, str(created["id"]))
            return str(created["id"])

    async def _input_url(self, image: InputImage) -> str:
        """A URL Wireflow can fetch: given URLs pass through, bytes are uploaded once."""
        if image.data is None:
            if not image.url:
                raise InvalidRequestError("an input image has neither bytes nor a URL")
            return image.url
        if image.sha256 not in self._uploads:
            ext = (image.mime_type or "image/png").split("/")[-1]
            files = {"file": (image.name or f"input.{ext}", image.data, image.mime_type or "image/png")}
            body = await self._call("POST", "/media/upload", files=files, idempotent=True)
            url = body.get("data", body).get("url") if isinstance(body, dict) else None
            if not isinstance(url, str) or not url:
                raise InvalidResponseError(f"{self.instance_name}: the media upload returned no url",
                                           provider=self.instance_name)
            self._uploads[image.sha256] = url
        return self._uploads[image.sha256]

    # -- status ---------------------------------------------------------------------------

    async def status(self, native_id: str) -> Job:
        path = self.settings.poll_path.replace("{id}", quote(native_id, safe=""))
        state = parse_poll(await self._call("GET", path))
        meta = {"wireflow_status": state.raw_status, "progress": state.progress}
        if state.status == "running":
            return self.job(native_id, "running", metadata=meta)
        if state.status != "succeeded":
            error = {"message": state.error or f"execution ended {state.raw_status}",
                     "node_id": state.failed_node, "wireflow_status": state.raw_status}
            return self.job(native_id, state.status, error=error, metadata=meta)  # type: ignore[arg-type]
        if not state.urls:
            raise NoImageReturnedError(
                f"{self.instance_name}: execution {native_id} completed without an image URL",
                provider=self.instance_name, text="\n".join(state.texts) or None)
        images = await fetch_outputs(self.http, state.urls, provider=self.instance_name,
                                     job_id=make_job_id(self.instance_name, native_id), policy=self.download_policy())
        credits = state.credits
        cost = (Cost(credits=credits, usd=round(credits * load_catalog().usd_per_credit, 9), estimated=False)
                if credits is not None else Cost(estimated=True))
        result = ImageResult(
            images=list(images), provider=self.instance_name, model=self.settings.model or self.default_model(),
            job_id=make_job_id(self.instance_name, native_id), cost=cost, usage=Usage(credits=credits),
            text=state.texts, metadata={"execution_id": native_id, "output_urls": state.urls, **meta})
        return self.job(native_id, "succeeded", result=result, metadata=meta)

    def result_of(self, job: Job) -> ImageResult:
        if job.status == "succeeded" and job.result is not None:
            return job.result
        error = job.error or {}
        node = f" at node {error['node_id']!r}" if error.get("node_id") else ""
        raise JobFailedError(
            f"{self.instance_name} execution {job.native_id} {error.get('wireflow_status') or job.status}{node}: "
            f"{error.get('message') or job.status}", provider=self.instance_name)

    # -- HTTP: one place for auth, redirects, rate limits, retries and errors --------------

    async def _call(self, method: str, path: str, *, json: Any = None, files: Any = None,
                    headers: dict[str, str] | None = None, kind: str = "request", auth: bool = True,
                    idempotent: bool = True) -> Any:
        """Send with retries: 429 (after the server's hint), 5xx and broken answers.

        Non-idempotent calls (workflow creation) retry only when the server refused them
        outright (429, 5xx), never after an answer was lost.
        """
        attempt = 0
        while True:
            try:
                return await self._send(method, path, json=json, files=files, headers=headers, kind=kind, auth=auth)
            except (RateLimitError, ProviderUnavailableError, InvalidResponseError) as exc:
                status = getattr(exc, "status_code", None) or 0
                refused = status == 429 or status >= 500
                if attempt >= self.settings.max_retries or not (idempotent or refused):
                    raise
                wait = getattr(exc, "retry_after", None)
                wait = min(8.0, self.settings.retry_backoff_s * 2 ** attempt) if wait is None else wait
                if wait > self.settings.max_rate_wait_s:
                    raise
                attempt += 1
                await asyncio.sleep(wait)

    async def _send(self, method: str, path: str, *, json: Any, files: Any, headers: dict[str, str] | None,
                    kind: str, auth: bool) -> Any:
        limiter = self.limits[kind]
        max_wait = self.settings.max_rate_wait_s
        scope = current_scope()
        if scope is not None and scope.deadline is not None:  # never wait for a slot past the call's deadline
            max_wait = min(max_wait, scope.deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(0.0, max_wait) + 0.05):  # waiting behind other calls counts too
                await limiter.acquire(max_wait=max(0.0, max_wait))
        except (RateLimitTooLong, TimeoutError) as exc:
            wait = exc.wait if isinstance(exc, RateLimitTooLong) else limiter.next_slot()
            raise RateLimitError(
                f"{self.instance_name}: the {kind} rate limit has no free slot for {wait:.0f} s, past the "
                f"call's deadline or max_rate_wait_s; nothing was sent. Slow down, give the call more time, "
                "or raise executions_per_minute/plan in the config",
                provider=self.instance_name, retry_after=wait) from None
        url = self.base_url + path
        sent_headers = dict(headers or {})
        if auth and self.api_key is not None:
            sent_headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                response = await self.http.request(method, url, json=json, files=files, headers=sent_headers,
                                                   follow_redirects=False)
                if response.status_code not in _REDIRECTS or "location" not in response.headers:
                    break
                # 301/308 from wireflow.ai keep method and body (Vercel does; G3 uses curl -L).
                target = urljoin(url, response.headers["location"])
                if not _same_site(url, target):
                    sent_headers.pop("Authorization", None)
                url = target
        except httpx.HTTPError as exc:
            raise self.translate_error(exc) from exc
        limiter.observe(response.headers)
        if response.status_code >= 400:
            error = self.translate_error(WireflowAPIError(response))
            if isinstance(error, RateLimitError):
                limiter.hold(error.retry_after)
            raise error
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise InvalidResponseError(
                f"{self.instance_name} answered HTTP {response.status_code} with {describe_body(response)}",
                provider=self.instance_name, status_code=response.status_code,
                request_id=response.headers.get("x-request-id")) from None

    def translate_error(self, exc: BaseException) -> ImageGenError:
        if isinstance(exc, WireflowAPIError):
            return error_from(exc.status_code, exc.headers, exc.body, provider=self.instance_name,
                              raw_text=exc.raw_text)
        return super().translate_error(exc)


def _same_site(origin: str, target: str) -> bool:
    """Whether a redirect stays with the same service (``wireflow.ai`` -> ``www.wireflow.ai``)."""
    a, b = urlsplit(origin), urlsplit(target)
    host_a, host_b = (a.hostname or "").removeprefix("www."), (b.hostname or "").removeprefix("www.")
    return host_a == host_b and (a.scheme == b.scheme or b.scheme == "https")

