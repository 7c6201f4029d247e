"""A local, faithful Wireflow: ``imagegen emulate wireflow``.

Routes (each under ``/api/v1`` and at the root, so both ``http://host:port`` and
``http://host:port/api/v1`` work as base URLs; ``/legacy/...`` answers a 308, or 301,
to the same path, as ``wireflow.ai`` does to ``www.wireflow.ai``):

- ``GET/POST /workflows``, ``GET/PUT/DELETE /workflows/{id}``: CRUD with lint (422),
  compare-and-swap on ``baseUpdatedAt`` (409 ``stale_write``) and create-or-update by ``id``;
- ``POST /workflows/{id}/execute`` (201) and ``POST /workflows/{id}/run`` (202): credit
  pre-check (402 with ``breakdown``), 400 ``Workflow is not active``, executions per minute
  (429), ``Idempotency-Key`` replay for 24 h; ``GET /workflows/{id}/run``; ``/estimate``;
- ``GET /workflows/executions/{id}/poll`` (and the ``/workflows/executions/{id}`` and
  ``/executions/{id}/poll`` variants): executions go queued -> RUNNING -> COMPLETED (or
  FAILED/TIMEOUT/CANCELLED) on the latency model; outputs are served from ``/files/...``;
  credits are charged only when a generation node completes;
- ``GET/POST /workflow/{webhookId}/trigger``: no key, CORS ``*``, 202 ``queued``;
- ``POST /media/upload`` (multipart or ``{"url"}``), ``GET /developer/usage``.

Every answer has ``X-Request-Id``; authenticated ones have ``X-RateLimit-*``. The variant
switches are `EmulatorOptions` (``dialect="docs"`` or ``"scripts"`` presets, then one option
per documented contradiction). Choices where the spec says UNKNOWN: an idempotency key
replays the first 2xx answer whatever the new body is (marked ``Idempotent-Replayed: true``);
webhook triggers are not rate limited; the rate window is fixed, per key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen.testing import Emulator, Fault, FaultPlan, LatencyModel, Reject

from ._catalog import load_catalog
from ._emulator_render import (
    error_body,
    iso,
    poll_body,
)
from ._emulator_state import (
    Account,
    EmulatorOptions,
    Execution,
    Workflow,
    credit_needs,
    executable,
    images_per_run,
    node_kind,
    node_values,
    output_size,
)
from ._ratelimit import PLAN_LIMITS

__all__ = ["WireflowEmulator", "create_emulator", "default_latency"]

IDEMPOTENCY_TTL_S = 24 * 3600
_MARKERS = {"[[fail]]": "failed", "[[timeout]]": "timeout", "[[cancel]]": "cancelled"}


def default_latency() -> LatencyModel:
    """Nano Banana 2 on Wireflow: "4-15 s at 1K, 10-20 s at 4K" (seeds 000/001)."""
    return LatencyModel(base=6.0, per_megapixel=0.6, jitter=0.35)


class WireflowEmulator(Emulator):
    """Wireflow's REST API in memory. See the module docstring for what it covers."""

    name = "wireflow"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None,
                 seed: int = 0, options: EmulatorOptions | None = None) -> None:
        super().__init__(faults=faults, latency=latency or default_latency(), seed=seed)
        self.options = options or EmulatorOptions()
        self.accounts: dict[str, Account] = {}
        self.workflows: dict[str, Workflow] = {}
        self.executions: dict[str, Execution] = {}
        self._idempotent: dict[tuple[str, str], tuple[float, int, bytes, dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self._last_update = 0.0

    # -- plumbing ---------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        from . import _emulator_routes

        table = _emulator_routes.route_table(self)
        routes: list[BaseRoute] = [Route("/legacy/{path:path}", self._redirect,
                                         methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
        for prefix in ("/api/v1", ""):
            routes += [Route(prefix + path, endpoint, methods=methods) for path, endpoint, methods in table]
        return routes

    def new_id(self, prefix: str) -> str:
        digest = hashlib.sha256(f"{self.seed}:{prefix}:{next(self._ids)}".encode()).hexdigest()
        return f"{prefix}{digest[:23 if prefix == 'cm' else 16]}"

    def now_iso(self) -> str:
        # Strictly increasing, so compare-and-swap on updatedAt sees every write.
        now = max(time.time(), self._last_update + 0.001)
        self._last_update = now
        return iso(now)

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        extra: dict[str, Any] = {}
        if status == 429:
            wait = fault.retry_after if fault is not None and fault.retry_after is not None else 1.0
            extra = self._retry_after_body(time.time() + wait, wait)
        body = error_body(self.options, status, message, **extra)
        return JSONResponse(body, status_code=status, headers={"X-Request-Id": self.new_id("req_")})

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        wait = fault.retry_after if fault.retry_after is not None else 1.0
        headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(math.ceil(time.time() + wait))}
        if self.options.retry_after_header:
            headers["Retry-After"] = str(int(wait))
        return headers

    def reject_response(self, rej: Reject) -> Response:
        body = error_body(self.options, rej.status, rej.message, code=rej.code, **rej.fields)
        return JSONResponse(body, status_code=rej.status, headers=rej.headers)

    async def _redirect(self, request: Request) -> Response:
        target = "/" + request.path_params["path"]
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=self.options.redirect_status)

    # -- accounts and limits ----------------------------------------------------------------

    def authenticate(self, request: Request, scopes: tuple[str, ...]) -> Account:
        header = request.headers.get("authorization")
        if not header:
            raise Reject(401, "Missing Authorization header", code="missing_authorization")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme != "Bearer" or not token or any(ch.isspace() for ch in token):
            raise Reject(401, "Invalid API key format. Expected: Bearer sk-...", code="invalid_api_key_format")
        known = self.options.keys
        if token in self.options.invalid_keys or (known is not None and token not in known):
            raise Reject(401, "Invalid API key", code="invalid_api_key")
        account = self.account(token)
        if account.expired:
            raise Reject(401, "API key has expired", code="api_key_expired")
        if scopes and not set(scopes) & set(account.scopes):
            raise Reject(403, "Forbidden", code="missing_scope")
        return account

    def account(self, key: str) -> Account:
        if key not in self.accounts:
            info = (self.options.keys or {}).get(key, {})
            self.accounts[key] = Account(
                key=key, credits=float(info.get("credits", self.options.credits)),
                plan=info.get("plan", self.options.plan),
                scopes=tuple(info.get("scopes", Account.__dataclass_fields__["scopes"].default)),
                expired=bool(info.get("expired", key in self.options.expired_keys)),
                user=str(info.get("user", key)))
        return self.accounts[key]

    def owns(self, account: Account | None, owner_key: str) -> bool:
        """Whether ``account``'s user owns what the key ``owner_key`` created."""
        return account is not None and self.account(owner_key).user == account.user

    def spend(self, account: Account, kind: str) -> dict[str, str]:
        """Count one call against its fixed window; the X-RateLimit-* headers, or a 429."""
        opts = self.options
        if kind == "execution":
            limit = opts.executions_per_minute
        else:
            limit = opts.requests_per_minute or PLAN_LIMITS.get(account.plan, (60.0, 10.0))[0]
        now = time.time()
        # A fixed window opened by the key's first call in it (the spec leaves this UNKNOWN).
        start, count = account.windows.get(kind, (now, 0))
        if now >= start + opts.window_s:
            start, count = now, 0
        reset = start + opts.window_s
        headers = {"X-RateLimit-Limit": f"{limit:g}", "X-RateLimit-Reset": str(math.ceil(reset))}
        if count >= limit:
            self.counters.incr("rate_limited")
            headers["X-RateLimit-Remaining"] = "0"
            if opts.retry_after_header:
                headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            message = ("Too many workflow executions. Please try again later." if kind == "execution"
                       else "Too many requests. Please try again later.")
            raise Reject(429, message, code="rate_limited", headers=headers,
                         **self._retry_after_body(reset, reset - now))
        account.windows[kind] = (start, count + 1)
        headers["X-RateLimit-Remaining"] = f"{limit - count - 1:g}"
        return headers

    def _retry_after_body(self, epoch: float, seconds: float) -> dict[str, Any]:
        if self.options.retry_after_body == "epoch":
            return {"retryAfter": math.ceil(epoch)}
        if self.options.retry_after_body == "seconds":
            return {"retryAfter": max(1, math.ceil(seconds))}
        return {}

    # -- idempotency ------------------------------------------------------------------------

    def replay(self, scope: str, key: str | None) -> Response | None:
        stored = self._idempotent.get((scope, key)) if key else None
        if stored is None or time.time() - stored[0] > IDEMPOTENCY_TTL_S:
            return None
        self.counters.incr("idempotent_replays")
        _, status, body, headers = stored
        return Response(body, status_code=status, media_type="application/json",
                        headers={**headers, "Idempotent-Replayed": "true"})

    def remember(self, scope: str, key: str | None, response: Response) -> Response:
        if key and 200 <= response.status_code < 300:
            headers = {k: v for k, v in response.headers.items() if k.lower() == "location"}
            self._idempotent[(scope, key)] = (time.time(), response.status_code, bytes(response.body), headers)
        return response

    # -- executions -------------------------------------------------------------------------

    def precheck(self, account: Account, nodes: list[dict[str, Any]]) -> None:
        breakdown = credit_needs(nodes)
        required = sum(entry["credits"] for entry in breakdown)
        if required > account.credits:
            self.counters.incr("insufficient_credits")
            raise Reject(402, f"Insufficient credits. Required: {required:g}, Available: {account.credits:g}",
                         code="insufficient_credits", insufficientCredits=True, requiredCredits=required,
                         availableCredits=account.credits,
                         breakdown=[{k: e[k] for k in ("nodeId", "nodeLabel", "credits")} for e in breakdown])

    def start(self, workflow: Workflow, owner: str, nodes: list[dict[str, Any]],
              edges: list[dict[str, Any]], *, initial_status: str | None = None) -> Execution:
        megapixels = 0.0
        outcome: str = self.options.outcome
        for node in executable(nodes):
            kind = node_kind(node)
            if kind is not None and kind.billable:
                megapixels += output_size(node, kind, None)[2] * images_per_run(node, kind)
            prompt = str(node.get("data", {}).get("config", {}).get("prompt", "")) + json.dumps(node)
            outcome = next((o for marker, o in _MARKERS.items() if marker in prompt), outcome)
        now = time.time()
        running_at = now + self.options.queued_s
        execution = Execution(
            id=self.new_id("exec_"), workflow_id=workflow.id, owner=owner, nodes=nodes, edges=edges,
            created=now, running_at=running_at, completes_at=running_at + self.latency.sample(megapixels),
            outcome=outcome, initial_status=(initial_status or self.options.initial_status).upper(),
            batch_id=str(uuid.UUID(hashlib.md5(f"{self.seed}:{next(self._ids)}".encode()).hexdigest())))
        self.executions[execution.id] = execution
        workflow.execution_count += 1
        workflow.last_executed_at = iso(now)
        self.counters.incr("executions")
        return execution

    def status_of(self, execution: Execution) -> str:
        """The canonical (upper-case) status now, finishing the execution when its time is up."""
        phase = execution.phase()
        if phase == "queued":
            return execution.initial_status
        if phase == "running":
            return "RUNNING"
        if not execution.finished:
            self._finish(execution)
        return {"completed": "COMPLETED", "failed": "FAILED", "timeout": "TIMEOUT",
                "cancelled": "CANCELLED"}[execution.outcome]

    def _finish(self, execution: Execution) -> None:
        execution.finished = True
        if execution.outcome != "completed":
            execution.error = {"failed": self.options.failure_message,
                               "timeout": "Execution timed out after 600 s",
                               "cancelled": "Execution was cancelled"}[execution.outcome]
            self.counters.incr(f"executions_{execution.outcome}")
            return  # "If a model fails, you are not charged" (P11)
        charged = 0.0
        for node in executable(execution.nodes):
            kind = node_kind(node)
            if kind is None:
                continue
            if kind.name == "input:image":
                url = next((v for k, v in node_values(node).items() if k in ("imageUrl", "image") and v), None)
                execution.outputs[str(node.get("id"))] = [url] if url else []
                self.counters.incr("reference_images", 1 if url else 0)
            if not kind.billable:
                continue
            width, height, _ = output_size(node, kind, self.options.output_max_side)
            count = images_per_run(node, kind)
            mime = "image/jpeg" if kind.emulator_format == "jpeg" else "image/png"
            execution.outputs[str(node.get("id"))] = [
                self.store_file(self.image(width, height, kind.emulator_format), mime) for _ in range(count)]
            charged += kind.credits * count
        execution.credits_charged = charged
        account = self.account(execution.owner)
        account.credits = max(0.0, account.credits - charged)
        usd = round(charged * load_catalog().usd_per_credit, 9)
        self.counters.charge(usd=usd, credits=charged, ref=execution.id)
        self.counters.incr("executions_completed")

    def poll_response(self, request: Request, execution: Execution) -> Response:
        status = self.status_of(execution)
        self.counters.incr("polls")
        execution.polls += 1
        if execution.seen_done_at is None and execution.phase() == "done":
            execution.seen_done_at = time.time()
        base = str(request.base_url).rstrip("/")

        def absolute(path: str) -> str:
            return path if path.startswith(("http://", "https://")) else base + path

        return JSONResponse(poll_body(self.options, execution, status, absolute))


def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    **options: Any) -> WireflowEmulator:
    """A Wireflow emulator. ``options`` are `EmulatorOptions` fields, e.g.
    ``dialect="scripts"``, ``poll_shape="nodeStates"``, ``retry_after_header=False``,
    ``credits=5``, ``outcome="failed"``; ``latency`` defaults to `default_latency`."""
    return WireflowEmulator(faults=faults, latency=latency, seed=seed,
                            options=EmulatorOptions.from_kwargs(options))

