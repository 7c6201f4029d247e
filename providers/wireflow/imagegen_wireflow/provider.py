"""The Wireflow provider: a request becomes a graph, the graph a saved workflow, and each
request one execution of it, polled until done; the core downloads the outputs.

Lifecycle of one call:

1. input images given as bytes are uploaded (``POST /media/upload``) to get URLs;
2. the graph is built from the node table (`_graph`); the workflow for its shape is
   looked up in the workflow cache, or created once (``POST /workflows``);
3. ``POST /workflows/{id}/execute`` with the full graph, or ``POST .../run`` with
   ``{"inputs": ...}`` when ``execute_mode = "run"``, or, with ``webhook_id`` set,
   ``POST /workflow/{webhookId}/trigger`` without a key (docs/providers/wireflow.md). Every
   one carries an ``Idempotency-Key`` (below), so the core's retries of a call that failed
   after a 429, a 5xx, a dropped connection or an unreadable answer are charged at most once;
4. the Job returned is ``running``; ``status()`` needs only the execution id, so any
   process can poll it (``GET /workflows/executions/{id}/poll``) and, once COMPLETED,
   download the outputs (``download_outputs``: size cap, content type and decode checks).

Sending, redirects (wireflow.ai answers 301/308 to www.wireflow.ai; the body is kept),
error answers, retries and rate limits are the kit's and the core's. Wireflow caps
executions at 10 per minute on every plan: ``rate_limits`` declares that cap, and the
core's limiter enforces it (across processes with the Redis backend).

Idempotency key: ``imagegen-`` + a hash of the request's content and a nonce. The nonce is
``options["idempotency_key"]`` when the caller gives one (the same key and request then
replay the first execution for 24 h, even from another process), else the router's key for
the logical request, which every retry reuses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from imagegen import (
    AuthenticationError,
    Cost,
    ImageRequest,
    ImageResult,
    InputImage,
    InsufficientCreditsError,
    InvalidRequestError,
    InvalidResponseError,
    Job,
    JobFailedError,
    ModelSpec,
    NoImageReturnedError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderInvalidRequestError,
    Usage,
)
from imagegen.provider import (
    AdaptivePollSchedule,
    ErrorDetails,
    ErrorReply,
    HTTPProvider,
    PollSchedule,
    ProviderSettings,
    RateLimits,
    Schedule,
    StatusRule,
    parse_number,
    parse_wait_hint,
)

from ._catalog import load_catalog, model_entry
from ._graph import Graph, ParamLocation, build_graph
from ._protocol import error_parts, execution_id_from, parse_poll, unwrap
from ._workflows import WorkflowCache, cache_key

__all__ = ["EXECUTIONS_PER_MINUTE", "WireflowProvider", "WireflowSettings"]

#: Wireflow runs at most this many executions per minute, on every plan.
EXECUTIONS_PER_MINUTE = 10.0


class WireflowSettings(ProviderSettings):
    """``[providers.wireflow]`` keys beyond the common ones."""

    #: Executions per minute (the core's limit on calls); Wireflow caps every plan at 10.
    executions_per_minute: float | None = None
    #: Trigger this saved workflow's webhook instead of creating workflows.
    webhook_id: str | None = None
    #: ``execute``: send the full graph to /execute; ``run``: send inputs to /run.
    execute_mode: Literal["execute", "run"] = "execute"
    #: Where node values go: ``config`` (client scripts), ``params`` (docs), ``data`` (API example).
    param_location: ParamLocation = "config"
    #: The poll path; the docs also show ``/workflows/executions/{id}``.
    poll_path: str = "/workflows/executions/{id}/poll"
    #: Remember workflow ids in ``<data dir>/wireflow/workflows.json`` for other processes.
    persist_workflows: bool = True


class WireflowProvider(HTTPProvider):
    """Wireflow (wireflow.ai): node-graph workflows running Nano Banana and other models."""

    name: ClassVar[str] = "wireflow"
    display_name: ClassVar[str] = "Wireflow"
    Settings: ClassVar[type[ProviderSettings]] = WireflowSettings
    api_key_env: ClassVar[tuple[str, ...]] = ("WIREFLOW_API_KEY",)
    default_base_url: ClassVar[str] = "https://www.wireflow.ai/api/v1"
    models_file: ClassVar[str | None] = "models.toml"
    #: Polls at six quantiles of Nano Banana 2's latency on Wireflow over 1K and 4K outputs
    #: ("4-15 s at 1K, 10-20 s at 4K"), then the documented backoff (start 1 s, x1.5, cap 10 s;
    #: docs/providers/wireflow.md). Against the documented schedule alone it spends fewer polls
    #: per job (2.7 vs 4.1 at 1K, 5.3 vs 5.8 at 4K) and sees the end sooner (1.5 vs 2.1 s, 1.9
    #: vs 3.6 s on average): benchmarks/results/wireflow_polling.md.
    poll_schedule: Schedule = AdaptivePollSchedule(
        times=(4.5, 6.3, 8.0, 12.6, 16.8, 21.2), then=PollSchedule(1.0, 1.5, 10.0))
    status_errors: ClassVar[Mapping[int, StatusRule]] = {
        401: StatusRule(AuthenticationError, "check the API key (WIREFLOW_API_KEY or providers.<name>.api_key); "
                                             "keys start with sk- or wf_live_"),
        402: StatusRule(InsufficientCreditsError, "top up credits in Wireflow's billing settings, or route to "
                                                  "another provider"),
        403: StatusRule(PermissionDeniedError, "the key lacks a scope for this call (workflows:read/write/execute, "
                                               "executions:read); create a key with those scopes"),
        404: StatusRule(NotFoundError, "the workflow or execution does not exist for this key"),
        409: StatusRule(ProviderError, "someone else changed the workflow; read it again and retry"),
        413: StatusRule(ProviderInvalidRequestError, "the request body is too large"),
    }
    emulator: ClassVar[str | None] = "imagegen_wireflow.emulator:create_emulator"
    #: Every execution is sent with an Idempotency-Key: one whose answer was lost is sent again
    #: for free (Wireflow answers with the same execution), so it need not fail as billed.
    bills_unreadable_answers: ClassVar[bool] = False

    settings: WireflowSettings

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflows = WorkflowCache.default() if self.settings.persist_workflows else WorkflowCache(None)
        self._creating: dict[str, asyncio.Lock] = {}
        self._uploads: dict[str, str] = {}

    @classmethod
    def prepare_model(cls, entry: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
        return model_entry(entry)

    def rate_limits(self) -> RateLimits:
        """Each call is one execution: the core holds calls to the executions-per-minute cap."""
        cap = self.settings.executions_per_minute or EXECUTIONS_PER_MINUTE
        configured = self.settings.requests_per_minute
        return RateLimits(min(cap, configured) if configured else cap, self.settings.max_concurrency)

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
            body = await self.request_json("POST", path, json=graph.trigger_data, headers=headers, auth=False)
        else:
            workflow_id, body = await self._execute(graph, headers)
        with self.parsing("execution answer"):
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
                    body = await self.request_json("POST", f"/workflows/{quote(workflow_id, safe='')}/run",
                                                   json={"inputs": graph.run_inputs}, headers=headers)
                else:
                    body = await self.request_json("POST", f"/workflows/{quote(workflow_id, safe='')}/execute",
                                                   json={"nodes": graph.nodes, "edges": graph.edges},
                                                   headers=headers)
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
            body = await self.request_json("POST", "/workflows",
                                           json=graph.workflow_body(f"imagegen {graph.node_type} {shape[:8]}"))
            with self.parsing("workflow creation answer"):
                created = unwrap(body)
                workflow_id = str(created.get("workflow", created)["id"] or "")
            if not workflow_id:
                raise InvalidResponseError(f"{self.instance_name}: creating a workflow returned no id",
                                           provider=self.instance_name)
            self.workflows.put(key, workflow_id)
            return workflow_id

    async def _input_url(self, image: InputImage) -> str:
        """A URL Wireflow can fetch: given URLs pass through, bytes are uploaded once."""
        if image.data is None:
            if not image.url:
                raise InvalidRequestError("an input image has neither bytes nor a URL")
            return image.url
        if image.sha256 not in self._uploads:
            ext = (image.mime_type or "image/png").split("/")[-1]
            files = {"file": (image.name or f"input.{ext}", image.data, image.mime_type or "image/png")}
            body = await self.request_json("POST", "/media/upload", files=files)
            with self.parsing("upload answer"):
                url = unwrap(body)["url"]
            if not isinstance(url, str) or not url:
                raise InvalidResponseError(f"{self.instance_name}: the media upload returned no url",
                                           provider=self.instance_name)
            self._uploads[image.sha256] = url
        return self._uploads[image.sha256]

    # -- status ---------------------------------------------------------------------------

    async def status(self, native_id: str) -> Job:
        path = self.settings.poll_path.replace("{id}", quote(native_id, safe=""))
        body = await self.request_json("GET", path)
        with self.parsing("poll answer"):
            state = parse_poll(body)
        meta = {"wireflow_status": state.raw_status, "progress": state.progress}
        if state.status == "running":
            return self.job(native_id, "running", metadata=meta)
        if state.status != "succeeded":
            error = {"message": state.error or f"execution ended {state.raw_status}",
                     "node_id": state.failed_node, "wireflow_status": state.raw_status}
            return self.job(native_id, "cancelled" if state.status == "cancelled" else "failed", error=error,
                            metadata=meta)
        if not state.urls:
            raise NoImageReturnedError(
                f"{self.instance_name}: execution {native_id} completed without an image URL",
                provider=self.instance_name, text="\n".join(state.texts) or None)
        images = await self.download_outputs(native_id, state.urls)
        credits = state.credits
        cost = (Cost(credits=credits, usd=round(credits * load_catalog().usd_per_credit, 9), estimated=False)
                if credits is not None else Cost(estimated=True))
        result = ImageResult(
            images=images, provider=self.instance_name, model=self.settings.model or self.default_model(),
            job_id=self.job_id(native_id), cost=cost, usage=Usage(credits=credits), text=state.texts,
            metadata={"execution_id": native_id, "output_urls": state.urls, **meta})
        return self.job(native_id, "succeeded", result=result, metadata=meta)

    def result_of(self, job: Job) -> ImageResult:
        if job.status == "succeeded":
            return super().result_of(job)
        error = job.error or {}
        node = f" at node {error['node_id']!r}" if error.get("node_id") else ""
        raise JobFailedError(
            f"{self.instance_name} execution {job.native_id} {error.get('wireflow_status') or job.status}{node}: "
            f"{error.get('message') or job.status}", provider=self.instance_name)

    # -- errors -----------------------------------------------------------------------------

    def read_error(self, reply: ErrorReply) -> ErrorDetails:
        """Either envelope (flat ``{"error": "..."}`` or Stripe-style ``{"error": {type, message,
        code}}``), with Wireflow's extra fields beside it."""
        message, code, extra = error_parts(reply.body)
        details = ErrorDetails(message=message, code=code, retry_after=parse_wait_hint(extra.get("retryAfter")))
        status = reply.status_code
        if status == 402:
            details.fields = {"required": parse_number(extra.get("requiredCredits")),
                              "available": parse_number(extra.get("availableCredits"))}
        elif status == 429:
            details.advice = "Wireflow caps executions at 10 per minute"
        elif status >= 500:
            details.advice = "Wireflow had a server error; retry shortly"
        elif message == "Workflow is not active":
            details.advice = "activate the workflow in Wireflow's editor (Settings > isActive)"
        violations = extra.get("violations")
        if status in (400, 422) and isinstance(violations, list) and violations:
            rules = "; ".join(str(v.get("message") or v.get("rule")) for v in violations[:3] if isinstance(v, dict))
            details.message = f"{message or code} ({rules})"
        return details
