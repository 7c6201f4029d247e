"""A local, faithful Wireflow: ``imagegen emulate wireflow``.

Routes (each under ``/api/v1`` and at the root, so both ``http://host:port`` and
``http://host:port/api/v1`` work as base URLs; ``/legacy/...`` answers a 308, or 301,
to the same path, as ``wireflow.ai`` does to ``www.wireflow.ai``):

- ``GET/POST /workflows``, ``GET/PUT/DELETE /workflows/{id}``: CRUD with lint (422),
  compare-and-swap on ``baseUpdatedAt`` (409 ``stale_write``) and create-or-update by ``id``;
  ``POST /workflows/lint``, ``PATCH /workflows/{id}/nodes/{nodeId}``,
  ``POST /workflows/{id}/duplicate`` and ``/visibility`` (``_emulator_edits``);
- ``POST /workflows/{id}/execute`` (201) and ``POST /workflows/{id}/run`` (202): credit
  pre-check (402 with ``breakdown``), 400 ``Workflow is not active``, executions per minute
  (429), ``Idempotency-Key`` replay for 24 h; ``targetNodeId`` and ``force`` as the published
  client uses them (``_emulator_runs``); ``GET /workflows/{id}/run``; ``/estimate``;
- ``GET /workflows/executions/{id}/poll`` (and the ``/workflows/executions/{id}`` and
  ``/executions/{id}/poll`` variants): executions go queued -> RUNNING -> COMPLETED (or
  FAILED/TIMEOUT/CANCELLED) on the emulator's clock; outputs are served from ``/files/...``;
  credits are charged only when a generation node completes;
- ``GET/POST /workflow/{webhookId}/trigger``: no key, CORS ``*``, 202 ``queued``;
- ``POST /media/upload`` (multipart, or ``{"url"}`` re-hosted), ``GET /media``,
  ``GET /developer/usage``, ``GET /nodes``, ``GET /blocks``, ``GET /remotion/templates[/{id}]``,
  ``POST /workflows/generate/stream`` (SSE), ``POST /render/remotion/preview``, and the
  unauthenticated download proxy ``GET /api/download?url=`` (``_emulator_library``).

Every answer has ``X-Request-Id``; authenticated ones have ``X-RateLimit-*``; an unknown path
answers the dialect's JSON error. The variant switches are `EmulatorOptions`
(``dialect="docs"`` or ``"scripts"`` presets, then one option per documented contradiction).
Choices where the spec says UNKNOWN are listed in ``docs/emulators.md``; among them: an
idempotency key replays the first 2xx answer whatever the new body is (marked
``Idempotent-Replayed: true``); webhook triggers are not rate limited; the rate window is fixed,
per key. Time (executions, rate windows, idempotency, timestamps) comes from ``clock``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen.testing import ApiKeys, Clock, Emulator, Fault, FaultPlan, LatencyModel, Reject, read_bearer

from ._emulator_render import error_body, iso, poll_body
from ._emulator_runs import RunPlan, plan_run, precheck, start, status_of
from ._emulator_state import Account, EmulatorOptions, Execution, Workflow

__all__ = ["WireflowEmulator", "create_emulator", "default_latency"]

IDEMPOTENCY_TTL_S = 24 * 3600
#: Plan -> requests per minute, from Wireflow's pricing page (docs/providers/wireflow.md); the
#: "Team" plan publishes no number and is given Pro's. Executions are capped separately, at
#: ``EmulatorOptions.executions_per_minute`` (10 on every plan).
PLAN_REQUESTS_PER_MINUTE = {"free": 10.0, "starter": 20.0, "pro": 60.0, "team": 60.0, "enterprise": 200.0}
_PROBLEMS = {"missing": (401, "Missing Authorization header", "missing_authorization"),
             "malformed": (401, "Invalid API key format. Expected: Bearer sk-...", "invalid_api_key_format"),
             "unknown": (401, "Invalid API key", "invalid_api_key"),
             "expired": (401, "API key has expired", "api_key_expired")}


def default_latency() -> LatencyModel:
    """Nano Banana 2 on Wireflow: "4-15 s at 1K, 10-20 s at 4K" (seeds 000/001)."""
    return LatencyModel(base=6.0, per_megapixel=0.6, jitter=0.35)


class WireflowEmulator(Emulator):
    """Wireflow's REST API in memory. See the module docstring for what it covers."""

    name = "wireflow"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None,
                 seed: int = 0, options: EmulatorOptions | None = None, clock: Clock | None = None,
                 api_keys: Any = None) -> None:
        super().__init__(faults=faults, latency=latency or default_latency(), seed=seed, clock=clock,
                         api_keys=api_keys)
        self.options = options or EmulatorOptions()
        self.accounts: dict[str, Account] = {}
        self.workflows: dict[str, Workflow] = {}
        self.executions: dict[str, Execution] = {}
        #: files uploaded through ``/media/upload``, per user, oldest first (``GET /media``)
        self.media: dict[str, list[dict[str, Any]]] = {}
        #: presigned uploads started and not completed, by media id (``_emulator_uploads``)
        self.pending_uploads: dict[str, Any] = {}
        self._idempotent: dict[tuple[str, str], tuple[float, int, bytes, dict[str, str]]] = {}
        self._ids = itertools.count(1)
        self._last_update = 0.0

    # -- plumbing ---------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        from . import _emulator_routes

        table = _emulator_routes.route_table(self)
        routes: list[BaseRoute] = [Route("/legacy/{path:path}", self._redirect,
                                         methods=["GET", "POST", "PUT", "DELETE", "PATCH"])]
        routes += _emulator_routes.site_routes(self)
        for prefix in ("/api/v1", ""):
            routes += [Route(prefix + path, endpoint, methods=methods) for path, endpoint, methods in table]
        return routes

    def new_id(self, prefix: str) -> str:
        """A fresh opaque id starting with `prefix` (same seed and order: same ids)."""
        digest = hashlib.sha256(f"{self.seed}:{prefix}:{next(self._ids)}".encode()).hexdigest()
        return f"{prefix}{digest[:23 if prefix == 'cm' else 16]}"

    def now_iso(self) -> str:
        """The clock's time as the API writes it; strictly increasing, so compare-and-swap on
        ``updatedAt`` sees every write."""
        now = max(self.clock.time(), self._last_update + 0.001)
        self._last_update = now
        return iso(now)

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        extra: dict[str, Any] = {}
        if status == 429:
            wait = fault.retry_after if fault is not None and fault.retry_after is not None else 1.0
            extra = self._retry_after_body(self.clock.time() + wait, wait)
        body = error_body(self.options, status, message, **extra)
        return JSONResponse(body, status_code=status, headers={"X-Request-Id": self.new_id("req_")})

    def route_error_response(self, request: Request, status: int) -> Response:
        message = "Not found" if status == 404 else f"Method {request.method} not allowed"
        return self.error_response(status, f"{message}: {request.method} {request.url.path}")

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        wait = fault.retry_after if fault.retry_after is not None else 1.0
        headers = {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(math.ceil(self.clock.time() + wait))}
        if self.options.retry_after_header:
            headers["Retry-After"] = str(int(wait))
        return headers

    def reject_response(self, reject: Reject) -> Response:
        body = error_body(self.options, reject.status, reject.message, code=reject.code, **reject.fields)
        return JSONResponse(body, status_code=reject.status, headers=reject.headers)

    async def _redirect(self, request: Request) -> Response:
        target = "/" + request.path_params["path"]
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(target, status_code=self.options.redirect_status)

    # -- accounts and limits ----------------------------------------------------------------

    def authenticate(self, request: Request, scopes: tuple[str, ...]) -> Account:
        """The caller's account, or a `Reject` worded as Wireflow words it (P3, P9)."""
        credential = self.api_keys.verify(read_bearer(request))
        if credential.problem is not None:
            status, message, code = _PROBLEMS[credential.problem]
            raise Reject(status, message, code=code)
        assert credential.key is not None
        account = self.account(credential.key)
        if scopes and not set(scopes) & set(account.scopes):
            raise Reject(403, "Forbidden", code="missing_scope")
        return account

    def account(self, key: str) -> Account:
        """The account of API key `key`, made on first use from its `api_keys` record."""
        if key not in self.accounts:
            info = self.api_keys.record(key)
            self.accounts[key] = Account(
                key=key, credits=float(info.get("credits", self.options.credits)),
                plan=info.get("plan", self.options.plan),
                scopes=tuple(info.get("scopes", Account.__dataclass_fields__["scopes"].default)),
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
            limit = opts.requests_per_minute or PLAN_REQUESTS_PER_MINUTE.get(account.plan, 60.0)
        now = self.clock.time()
        # A fixed window opened by the key's first call in it (the spec leaves this UNKNOWN).
        window_start, count = account.windows.get(kind, (now, 0))
        if now >= window_start + opts.window_s:
            window_start, count = now, 0
        reset = window_start + opts.window_s
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
        account.windows[kind] = (window_start, count + 1)
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
        """The stored answer for an ``Idempotency-Key`` seen in the last 24 h, if any."""
        stored = self._idempotent.get((scope, key)) if key else None
        if stored is None or self.clock.time() - stored[0] > IDEMPOTENCY_TTL_S:
            return None
        self.counters.incr("idempotent_replays")
        _, status, body, headers = stored
        return Response(body, status_code=status, media_type="application/json",
                        headers={**headers, "Idempotent-Replayed": "true"})

    def remember(self, scope: str, key: str | None, response: Response) -> Response:
        """Keep a 2xx answer under its ``Idempotency-Key`` for `replay`."""
        if key and 200 <= response.status_code < 300:
            headers = {k: v for k, v in response.headers.items() if k.lower() == "location"}
            self._idempotent[(scope, key)] = (self.clock.time(), response.status_code, bytes(response.body), headers)
        return response

    # -- executions (see _emulator_runs) ----------------------------------------------------

    def plan(self, workflow: Workflow, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], *,
             target: str | None = None, force: bool = False) -> RunPlan:
        """Which nodes an execution runs (`_emulator_runs.plan_run`)."""
        return plan_run(workflow, nodes, edges, target=target, force=force)

    def precheck(self, account: Account, nodes: list[dict[str, Any]], plan: RunPlan) -> None:
        """The credit pre-check for the nodes `plan` runs."""
        precheck(self, account, nodes, plan.runs)

    def start(self, workflow: Workflow, owner: str, nodes: list[dict[str, Any]], edges: list[dict[str, Any]],
              plan: RunPlan | None = None, *, initial_status: str | None = None) -> Execution:
        """Start an execution (`_emulator_runs.start`)."""
        return start(self, workflow, owner, nodes, edges, plan, initial_status=initial_status)

    def status_of(self, execution: Execution) -> str:
        """The canonical (upper-case) status of `execution` now."""
        return status_of(self, execution)

    def poll_response(self, request: Request, execution: Execution) -> Response:
        """The poll answer in the configured shape."""
        status = self.status_of(execution)
        self.counters.incr("polls")
        execution.polls += 1
        if execution.seen_done_at is None and execution.phase() == "done":
            execution.seen_done_at = self.clock.time()
        base = str(request.base_url).rstrip("/")

        def absolute(path: str) -> str:
            return path if path.startswith(("http://", "https://")) else base + path

        return JSONResponse(poll_body(self.options, execution, status, absolute))


def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    clock: Clock | None = None, api_keys: Any = None, **options: Any) -> WireflowEmulator:
    """A Wireflow emulator. ``options`` are `EmulatorOptions` fields, e.g.
    ``dialect="scripts"``, ``poll_shape="nodeStates"``, ``retry_after_header=False``,
    ``credits=5``, ``outcome="failed"``, ``image_scale=0.05``; ``latency`` defaults to
    `default_latency`. ``api_keys`` (a list, or ``{key: {"credits", "plan", "scopes", "user",
    "expired"}}``, or an `ApiKeys`) limits the keys accepted; the old ``keys``,
    ``invalid_keys`` and ``expired_keys`` options still work."""
    api_keys = _legacy_keys(api_keys, options)
    return WireflowEmulator(faults=faults, latency=latency, seed=seed, clock=clock, api_keys=api_keys,
                            options=EmulatorOptions.from_kwargs(options))


def _legacy_keys(api_keys: Any, options: dict[str, Any]) -> Any:
    """Fold the old ``keys``/``invalid_keys``/``expired_keys`` options into an `ApiKeys`."""
    keys = options.pop("keys", None)
    revoked = tuple(options.pop("invalid_keys", ()) or ())
    expired = tuple(options.pop("expired_keys", ()) or ())
    if keys is None and not revoked and not expired:
        return api_keys
    warnings.warn("the wireflow emulator's keys/invalid_keys/expired_keys options are now api_keys "
                  "(an ApiKeys for revoked or expired keys)", DeprecationWarning, stacklevel=3)
    return ApiKeys.of(api_keys if api_keys is not None else keys).extended(expired=expired, revoked=revoked)
