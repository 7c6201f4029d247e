"""The emulator's route handlers (the state and the wording live elsewhere)."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegen.testing import Reject

from . import _emulator_edits as edits
from . import _emulator_library as library
from . import _emulator_uploads as uploads
from ._emulator_render import envelope, execute_body, workflow_body
from ._emulator_runs import RunPlan
from ._emulator_state import (
    Account,
    Workflow,
    credit_needs,
    executable,
    lint,
    node_kind,
)

if TYPE_CHECKING:
    from .emulator import WireflowEmulator

__all__ = ["route_table", "site_routes"]

Handler = Callable[["WireflowEmulator", Request, Account | None], Awaitable[Response]]
READ, WRITE, EXECUTE = ("workflows:read",), ("workflows:write",), ("workflows:execute",)
POLL = ("workflows:read", "executions:read")  # G1 says the first, P3 the second (C6)
#: Run results and editor state a saved graph does not keep ("POST /workflows sanitizes most
#: of this", G4); GET shows the last run's output/status/error instead.
_UNSAVED = ("output", "result", "selectedOutput", "selectedIndex", "status", "error", "isExecuting", "dims")
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
         "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key"}


def endpoint(emu: WireflowEmulator, handler: Handler, *, scopes: tuple[str, ...] = (),
             kind: str = "request", auth: bool = True) -> Callable[[Request], Awaitable[Response]]:
    """Authenticate, count against the rate window, run, and stamp the common headers."""

    async def run(request: Request) -> Response:
        request_id = emu.new_id("req_")
        rate: dict[str, str] = {}
        try:
            account = None
            if auth:
                account = emu.authenticate(request, scopes)
                rate = emu.spend(account, kind)
            response = await handler(emu, request, account)
        except Reject as rej:
            response = emu.reject_response(rej)
        for key, value in rate.items():
            response.headers.setdefault(key, value)
        response.headers["X-Request-Id"] = request_id
        return response

    return run


def _checked_graph(request: Request, nodes: Any, edges: Any) -> tuple[list[Any], list[Any]]:
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise Reject(400, "Missing required fields: name, nodes, edges", code="missing_fields")
    if not nodes and not edges:
        raise Reject(400, "Cannot save workflow with 0 nodes and 0 edges. This appears to be a "
                           "frontend bug. Reload the page.", code="empty_workflow")
    if not nodes:
        raise Reject(400, "At least one node must be provided", code="missing_fields")
    if not all(isinstance(n, dict) and n.get("id") for n in nodes):
        raise Reject(400, "All nodes must have an id", code="missing_fields")
    if request.query_params.get("strict") != "false":
        violations = lint(nodes, edges)
        if violations:
            raise Reject(422, f"Workflow graph failed validation ({len(violations)} errors). "
                               f"{violations[0].message}", code="invalid_graph",
                          violations=[v.as_dict() for v in violations], warnings=[], migrations=[])
    return copy.deepcopy(nodes), [dict(e, id=e.get("id") or f"edge-{i}") for i, e in enumerate(edges)]


def _sanitized(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes as a saved graph keeps them: without run results or editor state."""
    for node in nodes:
        data = node.get("data")
        if isinstance(data, dict):
            for key in _UNSAVED:
                data.pop(key, None)
    return nodes


def _set_value(node: dict[str, Any], key: str, value: Any) -> None:
    data = node.setdefault("data", {})
    data.setdefault("config", {})[key] = value
    if isinstance(data.get("params"), dict):
        data["params"][key] = value


def _inject(nodes: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """``/run`` inputs (``{nodeId: value}``) or trigger data (``{prompt, images, <param>...}``)."""
    by_id = {str(n.get("id")): n for n in nodes}
    loose: dict[str, Any] = {}
    for key, value in values.items():
        node = by_id.get(key)
        kind = node_kind(node) if node else None
        if kind is not None and kind.value_param:
            for name in (kind.value_param, *kind.value_aliases):
                _set_value(node, name, value)  # type: ignore[arg-type]
        else:
            loose[key] = value
    images = list(loose.pop("images", []) or [])
    for node in executable(nodes):
        kind = node_kind(node)
        if kind is None:
            continue
        if kind.name == "input:text" and "prompt" in loose:
            _set_value(node, "prompt", loose["prompt"])
        elif kind.name == "input:image" and images:
            url = images.pop(0)
            for name in (kind.value_param or "imageUrl", *kind.value_aliases):
                _set_value(node, name, url)
        elif kind.billable:
            for key, value in loose.items():
                if key != "prompt":
                    _set_value(node, key, value)


# -- workflows ------------------------------------------------------------------------------

async def list_workflows(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    active = request.query_params.get("isActive")
    rows = [w for w in emu.workflows.values() if emu.owns(account, w.owner)
            and (active is None or str(w.is_active).lower() == active)]
    rows.sort(key=lambda w: w.updated_at, reverse=True)
    return JSONResponse(envelope(emu.options, [workflow_body(w, full=False) for w in rows]))


async def create_workflow(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await edits.json_body(request)
    if not body.get("name") or "nodes" not in body or "edges" not in body:
        raise Reject(400, "Missing required fields: name, nodes, edges", code="missing_fields")
    nodes, edges = _checked_graph(request, body["nodes"], body["edges"])
    nodes = _sanitized(nodes)
    existing = emu.workflows.get(str(body.get("id"))) if body.get("id") else None
    if existing is not None and emu.owns(account, existing.owner):  # G1: with an id, POST updates (C17)
        workflow, status = existing, 200
    else:
        workflow = Workflow(id=emu.new_id("cm"), owner=account.key, name="", nodes=[], edges=[],
                            created_at=emu.now_iso())
        emu.workflows[workflow.id] = workflow
        emu.counters.incr("workflows_created")
        status = 201
    workflow.name, workflow.nodes, workflow.edges = str(body["name"]), nodes, edges
    workflow.description = str(body.get("description") or "")
    workflow.tags = list(body.get("tags") or [])
    workflow.is_active = bool(body.get("isActive", True))
    workflow.webhook_id = body.get("webhookId") or workflow.webhook_id
    workflow.updated_at = emu.now_iso()
    if emu.options.envelope == "data":
        payload: Any = {"data": {"id": workflow.id, "name": workflow.name},
                        "meta": {"migrations": [], "warnings": []}}
    else:
        payload = workflow_body(workflow)
    return JSONResponse(payload, status_code=status)


def _absolute(request: Request) -> Any:
    base = str(request.base_url).rstrip("/")
    return lambda url: url if url.startswith(("http://", "https://")) else base + url


async def get_workflow(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    body = workflow_body(edits.owned_workflow(emu, request, account), absolute=_absolute(request))
    shape = emu.options.workflow_envelope
    return JSONResponse(body if shape == "bare" else {shape: body})


async def put_workflow(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    workflow = edits.owned_workflow(emu, request, account)
    body = await edits.json_body(request)
    if "linkPermission" in body:
        raise Reject(400, "linkPermission cannot be written here; use POST /visibility", code="invalid_field")
    base = body.get("baseUpdatedAt")
    if base is not None and base != workflow.updated_at:
        raise Reject(409, "The workflow changed since baseUpdatedAt", code="stale_write",
                      currentUpdatedAt=workflow.updated_at, yourBaseUpdatedAt=base)
    nodes, edges = _checked_graph(request, body.get("nodes", workflow.nodes), body.get("edges", workflow.edges))
    workflow.nodes, workflow.edges = _sanitized(nodes), edges
    for key, attr in (("name", "name"), ("description", "description"), ("tags", "tags"),
                      ("isActive", "is_active")):
        if key in body:
            setattr(workflow, attr, body[key])
    workflow.updated_at = emu.now_iso()
    return JSONResponse(envelope(emu.options, workflow_body(workflow)))


async def delete_workflow(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    workflow = edits.owned_workflow(emu, request, account)
    del emu.workflows[workflow.id]
    return JSONResponse(envelope(emu.options, {"id": workflow.id, "deleted": True}))


async def estimate(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    workflow = edits.owned_workflow(emu, request, account)
    breakdown = credit_needs(workflow.nodes)
    total = sum(e["credits"] for e in breakdown)
    return JSONResponse({"data": {
        "workflowId": workflow.id, "estimatedCredits": total, "estimatedProviderCostUsd": round(total * 0.01, 4),
        "availableCredits": account.credits, "creditSource": f"user:{account.key[-4:]}",
        "sufficient": account.credits >= total, "estimateComplete": True,
        "breakdown": [{**e, "unknownIterations": False, "fanOutUncertainty": "none"} for e in breakdown],
        "warnings": []}})


# -- executions -----------------------------------------------------------------------------

def _start_response(emu: WireflowEmulator, workflow: Workflow, account: Account, nodes: list[Any],
                    edges: list[Any], *, run: bool, plan: RunPlan | None = None) -> Response:
    if not workflow.is_active:
        raise Reject(400, "Workflow is not active", code="workflow_inactive")
    plan = plan or emu.plan(workflow, nodes, edges)
    emu.precheck(account, nodes, plan)
    execution = emu.start(workflow, account.key, nodes, edges, plan)
    if run:
        body: Any = {"data": {"executionId": execution.id, "status": emu.options.status_text("RUNNING")}}
        return JSONResponse(body, status_code=202)
    body = execute_body(emu.options, execution)
    if plan.stale:
        (body.get("data") if "data" in body else body)["staleDependencies"] = plan.stale
    return JSONResponse(body, status_code=emu.options.execute_status,
                        headers={"Location": f"/api/v1/workflows/executions/{execution.id}/poll"})


async def execute(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    workflow = edits.owned_workflow(emu, request, account)
    key = request.headers.get("idempotency-key")
    if (replayed := emu.replay(account.key, key)) is not None:
        return replayed
    body = await edits.json_body(request)
    if isinstance(body.get("nodes"), list) and body["nodes"]:
        nodes, edges = _checked_graph(request, body["nodes"], body.get("edges") or [])
    else:  # {"nodes": [], "edges": []} (seed 000) or {"inputs": ...} (P1): the saved graph
        nodes, edges = copy.deepcopy(workflow.nodes), copy.deepcopy(workflow.edges)
    for extra in (body.get("inputs"), body.get("triggerData")):
        if isinstance(extra, dict):
            _inject(nodes, extra)
    target = body.get("targetNodeId")
    plan = emu.plan(workflow, nodes, edges, target=str(target) if target is not None else None,
                    force=body.get("force") is True)
    response = _start_response(emu, workflow, account, nodes, edges, run=False, plan=plan)
    return emu.remember(account.key, key, response)


async def run(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    workflow = edits.owned_workflow(emu, request, account)
    key = request.headers.get("idempotency-key")
    if (replayed := emu.replay(account.key, key)) is not None:
        return replayed
    body = await edits.json_body(request)
    nodes, edges = copy.deepcopy(workflow.nodes), copy.deepcopy(workflow.edges)
    if isinstance(body.get("inputs"), dict):
        _inject(nodes, body["inputs"])
    return emu.remember(account.key, key, _start_response(emu, workflow, account, nodes, edges, run=True))


async def describe_run(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    workflow = edits.owned_workflow(emu, request, account)
    inputs = []
    for node in executable(workflow.nodes):
        kind = node_kind(node)
        if kind is not None and kind.category == "input":
            inputs.append({"nodeId": node["id"], "label": (node.get("data") or {}).get("label") or node["id"],
                           "type": "image" if kind.name == "input:image" else "text", "required": True})
    return JSONResponse({"data": {
        "workflowId": workflow.id, "workflowName": workflow.name, "inputs": inputs,
        "endpoint": f"/api/v1/workflows/{workflow.id}/run", "method": "POST",
        "example": {"inputs": {i["nodeId"]: f"<{i['type']}>" for i in inputs}}}})


def poll_route(variant: str) -> Handler:
    async def poll(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
        only = emu.options.only_poll_path
        execution = emu.executions.get(request.path_params["eid"])
        if (only is not None and only != variant) or execution is None or not emu.owns(account, execution.owner):
            raise Reject(404, "Execution not found", code="not_found")
        return emu.poll_response(request, execution)

    return poll


# -- webhook, media, usage ----------------------------------------------------------------

def _hooked(emu: WireflowEmulator, hook: str) -> Workflow:
    for workflow in emu.workflows.values():
        if hook in (workflow.webhook_id, workflow.id):  # "use the workflow's regular id" (P7)
            return workflow
    raise Reject(404, "Webhook not found", code="not_found", headers=dict(_CORS))


async def trigger(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=_CORS)
    workflow = _hooked(emu, request.path_params["hook"])
    if request.method == "GET":
        return JSONResponse({"workflowId": workflow.id, "name": workflow.name, "isActive": workflow.is_active,
                             "message": "Webhook is configured. Use POST to trigger execution."}, headers=_CORS)
    scope, key = f"webhook:{workflow.id}", request.headers.get("idempotency-key")
    if (replayed := emu.replay(scope, key)) is not None:
        return replayed
    if not workflow.is_active:
        raise Reject(400, "Workflow is not active", code="workflow_inactive", headers=dict(_CORS))
    nodes, edges = copy.deepcopy(workflow.nodes), copy.deepcopy(workflow.edges)
    _inject(nodes, await edits.json_body(request))
    plan = emu.plan(workflow, nodes, edges)
    emu.precheck(emu.account(workflow.owner), nodes, plan)
    execution = emu.start(workflow, workflow.owner, nodes, edges, plan, initial_status="queued")
    emu.counters.incr("webhook_triggers")
    if "authorization" in request.headers:
        emu.counters.incr("webhook_triggers_with_authorization")
    body = {"executionId": execution.id, "status": "queued", "message": "Workflow execution queued successfully"}
    return emu.remember(scope, key, JSONResponse(body, status_code=202, headers=_CORS))


def route_table(emu: WireflowEmulator) -> list[tuple[str, Any, list[str]]]:
    def e(handler: Handler, scopes: tuple[str, ...] = (), kind: str = "request", auth: bool = True) -> Any:
        return endpoint(emu, handler, scopes=scopes, kind=kind, auth=auth)

    return [
        ("/workflows/executions/{eid}/poll", e(poll_route("poll"), POLL), ["GET"]),
        ("/workflows/executions/{eid}", e(poll_route("details"), POLL), ["GET"]),
        ("/executions/{eid}/poll", e(poll_route("short"), POLL), ["GET"]),
        ("/workflows", e(list_workflows, READ), ["GET"]),
        ("/workflows", e(create_workflow, WRITE), ["POST"]),
        # before /workflows/{wid}, which would otherwise take "lint" and "generate" for ids
        ("/workflows/lint", e(edits.lint_graph, READ), ["POST"]),
        ("/workflows/generate/stream", e(library.generate_stream, WRITE), ["POST"]),
        ("/workflows/{wid}/nodes/{nid}", e(edits.patch_node, WRITE), ["PATCH"]),
        ("/workflows/{wid}/duplicate", e(edits.duplicate, WRITE), ["POST"]),
        ("/workflows/{wid}/visibility", e(edits.set_visibility, WRITE), ["POST"]),
        ("/workflows/{wid}", e(get_workflow, READ), ["GET"]),
        ("/workflows/{wid}", e(put_workflow, WRITE), ["PUT"]),
        ("/workflows/{wid}", e(delete_workflow, WRITE), ["DELETE"]),
        ("/workflows/{wid}/execute", e(execute, EXECUTE, kind="execution"), ["POST"]),
        ("/workflows/{wid}/run", e(run, EXECUTE, kind="execution"), ["POST"]),
        ("/workflows/{wid}/run", e(describe_run, READ), ["GET"]),
        ("/workflows/{wid}/estimate", e(estimate, READ), ["POST"]),
        ("/workflow/{hook}/trigger", e(trigger, auth=False), ["GET", "POST", "OPTIONS"]),
        ("/media/upload", e(library.upload, WRITE), ["POST"]),
        ("/media/upload-url", e(uploads.start_upload, WRITE), ["POST"]),
        ("/media/upload-url/complete", e(uploads.complete_upload, WRITE), ["POST"]),
        ("/feedback", e(uploads.feedback), ["POST"]),
        ("/workflows/{wid}/layout", e(edits.layout, WRITE), ["POST"]),
        ("/media", e(library.list_media, READ), ["GET"]),
        ("/developer/usage", e(library.usage, ("usage:read",)), ["GET"]),
        ("/nodes", e(library.nodes, READ), ["GET"]),
        ("/blocks", e(library.blocks, READ), ["GET"]),
        ("/remotion/templates", e(library.templates, READ), ["GET"]),
        ("/remotion/templates/{tid}", e(library.template, READ), ["GET"]),
        ("/render/remotion/preview", e(library.preview, READ), ["POST"]),
    ]


def site_routes(emu: WireflowEmulator) -> list[Route]:
    """Routes outside ``/api/v1``: the unauthenticated download proxy (G3 ``download``)."""

    async def download(request: Request) -> Response:
        try:
            return await library.download(emu, request)
        except Reject as rej:
            response = emu.reject_response(rej)
            response.headers["X-Request-Id"] = emu.new_id("req_")
            return response

    return [Route("/api/download", download, methods=["GET"]), *uploads.storage_routes(emu)]
