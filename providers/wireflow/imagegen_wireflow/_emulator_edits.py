"""Wireflow emulator routes that change a saved graph without replacing it: lint, PATCH one
node, duplicate, visibility, layout (G1, G1b, G2, G3, G10). The client scripts are the only
source for these, so both dialects answer in the scripts' shapes.

Layout (``POST /workflows/{id}/layout`` ``{gapX?, gapY?, scope?}``) places nodes in columns by
their depth in the graph (sources left), ``gapX`` apart, stacked ``gapY`` apart, and answers
``{positions, moved, bounds}``; it changes positions only. The real algorithm is UNKNOWN.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegen.testing import Reject

from ._emulator_state import Account, Workflow, lint, node_kind

if TYPE_CHECKING:
    from .emulator import WireflowEmulator

__all__ = ["duplicate", "json_body", "layout", "lint_graph", "owned_workflow", "patch_node", "set_visibility"]

MAX_PATCH_BYTES = 256 * 1024
_PATCHABLE = {"config", "params", "label", "position", "baseUpdatedAt"}
#: Fields PATCH refuses with 400 invalid_field (G1: "output, result, nodeType, isExecuting, and
#: other structural keys"); the exact list beyond those four is UNKNOWN.
_STRUCTURAL = {"output", "result", "nodeType", "isExecuting", "id", "type", "category", "inputs", "outputs",
               "selectedOutput", "selectedIndex", "data"}
_VISIBILITY = {"view", "private"}


async def json_body(request: Request, limit: int | None = None) -> dict[str, Any]:
    """The request's JSON object ({} when empty); 413 past ``limit`` bytes, 400 for anything else."""
    raw = await request.body()
    if limit is not None and len(raw) > limit:
        raise Reject(413, f"Body too large ({len(raw)} bytes; the limit is {limit})", code="payload_too_large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Reject(400, "Invalid JSON body", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Reject(400, "The body must be a JSON object", code="invalid_json")
    return body


def owned_workflow(emu: WireflowEmulator, request: Request, account: Account | None) -> Workflow:
    """The workflow in the path, if the caller's user owns it; 404 otherwise (as for a missing one)."""
    workflow = emu.workflows.get(request.path_params["wid"])
    if workflow is None or not emu.owns(account, workflow.owner):
        raise Reject(404, "Workflow not found", code="not_found")
    return workflow


async def lint_graph(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """``POST /workflows/lint``: ``{nodes, edges}`` or a whole workflow -> ``{data: {ok, ...}}``."""
    body = await json_body(request)
    nodes, edges = body.get("nodes"), body.get("edges", [])
    if not isinstance(nodes, list) or not isinstance(edges, list):
        raise Reject(400, "Expected {nodes, edges} or a workflow", code="missing_fields")
    violations = [v.as_dict() for v in lint(nodes, edges)]
    warnings = [{"rule": "deprecated-import-node", "message": f"{node.get('id')} uses a legacy import node",
                 "fix": "Use input:image for images, video and audio.", "nodeId": node.get("id")}
                for node in nodes if isinstance(node, dict)
                and (node.get("data") or {}).get("nodeType") in ("input:video", "input:audio")]
    emu.counters.incr("lints")
    return JSONResponse({"data": {"ok": not violations, "violations": violations, "warnings": warnings}})


async def patch_node(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """``PATCH /workflows/{id}/nodes/{nodeId}``: merge config/params, replace label/position."""
    workflow = owned_workflow(emu, request, account)
    body = await json_body(request, limit=MAX_PATCH_BYTES)
    forbidden = sorted(set(body) & _STRUCTURAL) or sorted(set(body) - _PATCHABLE)
    if forbidden:
        raise Reject(400, f"Cannot patch {', '.join(forbidden)}; send config, params, label or position",
                     code="invalid_field")
    if not set(body) & (_PATCHABLE - {"baseUpdatedAt"}):
        raise Reject(400, "Send at least one of config, params, label, position", code="missing_fields")
    base = body.get("baseUpdatedAt")
    if base is not None and base != workflow.updated_at:
        raise Reject(409, "The workflow changed since baseUpdatedAt", code="stale_write",
                     currentUpdatedAt=workflow.updated_at, yourBaseUpdatedAt=base)
    node = next((n for n in workflow.nodes if str(n.get("id")) == request.path_params["nid"]), None)
    if node is None:
        raise Reject(404, "Node not found", code="not_found")
    data = node.setdefault("data", {})
    for where in ("config", "params"):
        if isinstance(body.get(where), dict):
            merged = {**(data.get(where) or {}), **body[where]}
            data[where] = {k: v for k, v in merged.items() if v is not None}  # null deletes (G1)
    if isinstance(data.get("config"), dict):
        data["params"] = {**(data.get("params") or {}), **data["config"]}  # "mirrors config into params"
    if "label" in body:
        data["label"] = body["label"]
    if "position" in body:
        node["position"] = body["position"]
    kind = node_kind(node)
    if kind is not None and kind.category == "input" and kind.value_param:
        data["output"] = (data.get("config") or {}).get(kind.value_param)  # the derived output of input:*
    workflow.updated_at = emu.now_iso()
    emu.counters.incr("node_patches")
    return JSONResponse({"data": {"node": copy.deepcopy(node), "updatedAt": workflow.updated_at}})


async def duplicate(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """``POST /workflows/{id}/duplicate``: a copy the caller owns, without run results."""
    assert account is not None
    original = owned_workflow(emu, request, account)
    body = await json_body(request)
    name = body.get("name") or f"{original.name} (copy)"
    copied = Workflow(id=emu.new_id("cm"), owner=account.key, name=str(name), nodes=copy.deepcopy(original.nodes),
                      edges=copy.deepcopy(original.edges), description=original.description,
                      tags=list(original.tags), is_active=original.is_active, created_at=emu.now_iso())
    copied.updated_at = copied.created_at
    emu.workflows[copied.id] = copied
    emu.counters.incr("workflows_created")
    base = _site(request)
    return JSONResponse({"data": {"id": copied.id, "name": copied.name, "url": f"{base}/workflows/{copied.id}"}},
                        status_code=201)


async def set_visibility(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """``POST /workflows/{id}/visibility`` ``{"visibility": "view"|"private"}``: publish or not.

    Going public "re-sanitizes nodes": values whose keys look like secrets are wiped (G3)."""
    workflow = owned_workflow(emu, request, account)
    visibility = (await json_body(request)).get("visibility")
    if visibility not in _VISIBILITY:
        raise Reject(400, "visibility must be \"view\" or \"private\"", code="invalid_field")
    workflow.link_permission = str(visibility)
    if visibility == "view":
        for node in workflow.nodes:
            for where in ("config", "params"):
                values = (node.get("data") or {}).get(where)
                if isinstance(values, dict):
                    for key in [k for k in values if _secret_shaped(k)]:
                        values[key] = None
    workflow.updated_at = emu.now_iso()
    url = f"{_site(request)}/workflows/{workflow.id}" if visibility == "view" else None
    return JSONResponse({"data": {"id": workflow.id, "linkPermission": workflow.link_permission, "url": url}})


async def layout(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    workflow = owned_workflow(emu, request, account)
    body = await json_body(request)
    gap_x, gap_y = float(body.get("gapX") or 400), float(body.get("gapY") or 250)
    scope = body.get("scope", "all")
    chosen = {str(n.get("id")) for n in workflow.nodes} if scope == "all" else {str(i) for i in scope or []}
    depth = _depths(workflow)
    rows: dict[int, int] = {}
    positions: dict[str, dict[str, float]] = {}
    moved = []
    for node in workflow.nodes:
        node_id = str(node.get("id"))
        if node_id not in chosen:
            continue
        column = depth.get(node_id, 0)
        row = rows.get(column, 0)
        rows[column] = row + 1
        place = {"x": column * gap_x, "y": row * gap_y}
        if node.get("position") != place:
            moved.append(node_id)
        node["position"] = place
        positions[node_id] = place
    xs = [p["x"] for p in positions.values()] or [0.0]
    ys = [p["y"] for p in positions.values()] or [0.0]
    if moved:
        workflow.updated_at = emu.now_iso()
    bounds = {"x": min(xs), "y": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys)}
    return JSONResponse({"positions": positions, "moved": moved, "bounds": bounds})


def _depths(workflow: Workflow) -> dict[str, int]:
    """Each node's longest distance from a source node (cycles are cut where they close)."""
    parents: dict[str, list[str]] = {str(n.get("id")): [] for n in workflow.nodes}
    for edge in workflow.edges:
        if str(edge.get("target")) in parents and str(edge.get("source")) in parents:
            parents[str(edge.get("target"))].append(str(edge.get("source")))
    depth: dict[str, int] = {}

    def of(node_id: str, seen: frozenset[str]) -> int:
        if node_id not in depth:
            above = [of(p, seen | {node_id}) + 1 for p in parents[node_id] if p not in seen]
            depth[node_id] = max(above, default=0)
        return depth[node_id]

    for node_id in parents:
        of(node_id, frozenset())
    return depth


def _secret_shaped(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("apikey", "api_key", "secret", "token", "password"))


def _site(request: Request) -> str:
    """The site root as the client sees it (the API base without ``/api/v1``)."""
    return str(request.base_url).rstrip("/")
