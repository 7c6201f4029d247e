"""The emulator's model of Wireflow: options (dialects), accounts, workflows, executions,
graph lint and credit needs. Rendering of bodies lives in ``_emulator_render``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from imagegen.testing import JobTimeline

from ._catalog import NodeType, load_catalog

__all__ = ["Account", "EmulatorOptions", "Execution", "Violation", "Workflow", "lint", "node_values"]

SIZES_PX = {"512": 512, "512px": 512, "0.5K": 512, "1K": 1024, "2K": 2048, "4K": 4096}
_ALL_SCOPES = ("workflows:read", "workflows:write", "workflows:execute", "executions:read",
               "usage:read", "apps:execute")
_VISUAL_ONLY = {"stickyNote", "custom_group"}

#: What each dialect (spec §14) selects; any option given explicitly wins. Both poll shapes
#: carry top-level ``status`` and ``nodeStates``, which Wireflow's published client reads (G2:
#: "every poll response carries nodeStates"; G3 ``wait``, G10, G11).
DIALECTS: dict[str, dict[str, Any]] = {
    "docs": {"envelope": "bare", "error_style": "flat", "execute_shape": "executionRuns",
             "poll_shape": "docs", "report_credits": False},
    "scripts": {"envelope": "data", "error_style": "stripe", "execute_shape": "executionId",
                "poll_shape": "scripts", "report_credits": True},
}


@dataclass
class EmulatorOptions:
    """Every variant switch of the emulator; `dialect` presets the first five (§14)."""

    dialect: Literal["docs", "scripts"] = "docs"
    #: success bodies bare (P2) or ``{"data": ...}`` (G1) (C15)
    envelope: Literal["bare", "data"] | None = None
    #: ``{"error": "..."}`` (P9) or ``{"error": {"type", "message", "code"}}`` (G1) (C7)
    error_style: Literal["flat", "stripe"] | None = None
    #: execute 201 as ``executionRuns`` (P6), ``{executionId, status}`` (G1) or under ``data`` (C3)
    execute_shape: Literal["executionRuns", "executionId", "data"] | None = None
    #: the poll body (C14): ``docs`` is P2's ``{status, nodeResults}`` plus G2's ``nodeStates``;
    #: ``scripts`` is G2's top-level ``{status, nodeStates, nodeResults, finalOutput}``; the
    #: narrower variants are P2 ``nodeRuns`` only, G3/G10 ``nodeStates`` only, G1 ``data`` +
    #: ``finalOutput`` only, and everything under ``data``
    poll_shape: Literal["docs", "scripts", "nodeRuns", "nodeStates", "finalOutput", "data"] | None = None
    #: ``GET /workflows/{id}``: bare (what G3 ``run-node``/``run-force`` read), under ``data``
    #: (G1) or under ``workflow`` (G3 ``organize`` accepts it)
    workflow_envelope: Literal["bare", "data", "workflow"] = "bare"
    #: report ``creditsUsed`` on the poll (seed 002: "credit usage"; the field name is a guess)
    report_credits: bool | None = None
    #: execute answers 201 (P6) or 200 (seed 002 "200/201") (C18)
    execute_status: int = 201
    #: ``RUNNING``/``COMPLETED`` or ``running``/``completed`` (C19)
    status_case: Literal["upper", "lower"] = "upper"
    #: a node run's raw ``output``: ``{images: [{url}]}`` (P6), ``{url}`` or a bare string (G2)
    node_output: Literal["images", "url", "string"] = "images"
    #: status shown before RUNNING, and for how long (in latency-model seconds)
    initial_status: str = "RUNNING"
    queued_s: float = 0.0
    #: send ``Retry-After`` on 429 (G3 says the server sends only X-RateLimit-Reset) (C8)
    retry_after_header: bool = True
    #: the 429 body's ``retryAfter``: an epoch (P8), seconds (seed 000) or absent
    retry_after_body: Literal["epoch", "seconds", "none"] = "epoch"
    #: how executions end: completed, failed, timeout or cancelled (prompts may say [[fail]]...)
    outcome: Literal["completed", "failed", "timeout", "cancelled"] = "completed"
    failure_message: str = "FAL request failed: the prompt was flagged by the content filter"
    #: starting credit balance of every key not listed in `keys`
    credits: float = 10_000.0
    #: rate limits: the plan's requests/min (P8), executions/min (10 on every plan), window length
    plan: Literal["free", "starter", "pro", "team", "enterprise"] = "enterprise"
    requests_per_minute: float | None = None
    executions_per_minute: float = 10.0
    window_s: float = 60.0
    #: 301 or 308 for the ``/legacy/...`` redirect (the old ``wireflow.ai`` host, G1a)
    redirect_status: int = 308
    #: shrink output images by this factor (small cassettes), as every emulator's ``image_scale``
    image_scale: float = 1.0
    #: the old way to shrink them: at most this many pixels per side
    output_max_side: int | None = None
    #: the poll route answers 404 unless the client uses this path variant (C2); None: all
    only_poll_path: Literal["poll", "details", "short"] | None = None

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}; use one of {', '.join(DIALECTS)}")
        for name, value in DIALECTS[self.dialect].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if not 0 < self.image_scale <= 1:
            raise ValueError(f"image_scale must be in (0, 1], got {self.image_scale!r}")

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> EmulatorOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown wireflow emulator option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        return cls(**options)

    def status_text(self, status: str) -> str:
        return status.upper() if self.status_case == "upper" else status.lower()


@dataclass
class Account:
    key: str
    credits: float
    plan: str
    scopes: tuple[str, ...] = _ALL_SCOPES
    expired: bool = False
    #: keys of one user see each other's workflows and executions
    user: str = ""
    #: kind -> (window start, count)
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    #: when this key sent feedback in the last minute (``POST /feedback``'s burst limit)
    feedback_times: list[float] = field(default_factory=list)


@dataclass
class NodeResult:
    """A node's cached output on a saved workflow, written by the last run that ran it."""

    urls: list[str]
    #: the node's parameters when it ran (a later change makes the cache stale)
    values: dict[str, Any]
    paid: bool


@dataclass
class Workflow:
    id: str
    owner: str
    name: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    description: str = ""
    tags: list[str] = field(default_factory=list)
    is_active: bool = True
    webhook_id: str | None = None
    created_at: str = ""
    updated_at: str = ""
    execution_count: int = 0
    last_executed_at: str | None = None
    #: ``view`` (published) or ``private`` (P4's isPublished; G3's linkPermission)
    link_permission: str = "private"
    #: node id -> cached result (G2: "output/status/error are null until a run writes them")
    results: dict[str, NodeResult] = field(default_factory=dict)


@dataclass
class Execution:
    id: str
    workflow_id: str
    owner: str
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    timeline: JobTimeline
    outcome: str
    initial_status: str
    batch_id: str
    #: the nodes that run (a targeted run passes the others through with their cached output)
    runs: frozenset[str] = frozenset()
    #: node id -> output URL paths: cached outputs passed through at the start, then new ones
    outputs: dict[str, list[str]] = field(default_factory=dict)
    finished: bool = False
    credits_charged: float = 0.0
    error: str | None = None
    #: polls answered, and when a poll first showed the end (benchmarks read these)
    polls: int = 0
    seen_done_at: float | None = None

    @property
    def created(self) -> float:
        return self.timeline.created_at

    @property
    def running_at(self) -> float:
        return self.timeline.running_at

    @property
    def completes_at(self) -> float:
        """When the execution is due to end (epoch seconds); tests may move it."""
        return self.timeline.due_at

    @completes_at.setter
    def completes_at(self, value: float) -> None:
        self.timeline.due_at = value

    def phase(self) -> str:
        return "done" if self.finished else self.timeline.phase()


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    fix: str = ""
    node_id: str | None = None
    edge_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "message": self.message, "fix": self.fix}
        if self.node_id:
            out["nodeId"] = self.node_id
        if self.edge_id:
            out["edgeId"] = self.edge_id
        return out


def node_kind(node: dict[str, Any]) -> NodeType | None:
    raw = node.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return load_catalog().nodes.get(str(data.get("nodeType", "")))


def executable(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nodes that run: sticky notes and groups are "filtered out during execution" (G4)."""
    return [n for n in nodes if isinstance(n, dict) and n.get("type") not in _VISUAL_ONLY]


def node_values(node: dict[str, Any]) -> dict[str, Any]:
    """A node's parameters from all three documented places (C5): data, params, config."""
    raw = node.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    skip = {"label", "nodeType", "category", "config", "params", "inputs", "outputs", "output", "result",
            "selectedOutput", "selectedIndex", "isExecuting", "inputType", "dims", "status", "error"}
    values = {k: v for k, v in data.items() if k not in skip}
    for where in ("params", "config"):
        if isinstance(data.get(where), dict):
            values.update(data[where])
    return values


def _port(handle: Any, prefix: str) -> str | None:
    return handle[len(prefix):] if isinstance(handle, str) and handle.startswith(prefix) else None


def lint(nodes: list[Any], edges: list[Any]) -> list[Violation]:
    """G1's gate: unknown nodeType, dangling edge, unknown port, type mismatch (G4a), cycle."""
    found: list[Violation] = []
    by_id: dict[str, NodeType] = {}
    for node in executable(nodes):
        kind = node_kind(node)
        node_id = str(node.get("id"))
        if kind is None:
            node_type = (node.get("data") or {}).get("nodeType")
            found.append(Violation("unknown-node-type", f"Unknown nodeType {node_type!r}",
                                   "Use a nodeType from GET /nodes.", node_id=node_id))
        else:
            by_id[node_id] = kind
    graph: dict[str, list[str]] = {node_id: [] for node_id in by_id}
    for edge in edges:
        if not isinstance(edge, dict):
            continue
        edge_id = str(edge.get("id") or "")
        source, target = str(edge.get("source")), str(edge.get("target"))
        if source not in by_id or target not in by_id:
            found.append(Violation("dangling-edge", f"Edge {source} -> {target} points at a missing node",
                                   "Remove the edge or add the node.", edge_id=edge_id))
            continue
        out_port, in_port = _port(edge.get("sourceHandle"), "out-"), _port(edge.get("targetHandle"), "in-")
        out_type = by_id[source].outputs.get(out_port or "")
        in_type = by_id[target].input_port(in_port or "")
        if out_type is None:
            found.append(Violation("bad-source-handle", f"{source} has no output {edge.get('sourceHandle')!r}",
                                   f"Did you mean \"out-{next(iter(by_id[source].outputs), '?')}\"?",
                                   node_id=source, edge_id=edge_id))
        elif in_type is None:
            found.append(Violation("bad-target-handle", f"{target} has no input {edge.get('targetHandle')!r}",
                                   f"Did you mean \"in-{next(iter(by_id[target].inputs), '?')}\"?",
                                   node_id=target, edge_id=edge_id))
        elif out_type != in_type:
            found.append(Violation("type-mismatch", f"{out_type} output wired to a {in_type} input",
                                   "Handles need matching port types.", node_id=target, edge_id=edge_id))
        graph[source].append(target)
    if _has_cycle(graph):
        found.append(Violation("cycle", "The graph has a cycle", "Remove an edge of the loop."))
    return found


def _has_cycle(graph: dict[str, list[str]]) -> bool:
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1 or (state.get(nxt) is None and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(state.get(node) is None and visit(node) for node in graph)


def credit_needs(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One breakdown entry per billable node: credits x images asked for."""
    breakdown = []
    for node in executable(nodes):
        kind = node_kind(node)
        if kind is None or not kind.billable:
            continue
        count = images_per_run(node, kind)
        breakdown.append({"nodeId": str(node.get("id")), "nodeLabel": (node.get("data") or {}).get("label")
                          or kind.label, "model": kind.name, "credits": kind.credits * count,
                          "unitCredits": kind.credits, "iterations": count})
    return breakdown


def images_per_run(node: dict[str, Any], kind: NodeType) -> int:
    name = kind.params.get("n")
    value = node_values(node).get(name) if name else None
    try:
        return max(1, min(16, int(value))) if value is not None else 1
    except (TypeError, ValueError):
        return 1


def output_size(node: dict[str, Any], kind: NodeType, max_side: int | None,
                scale: float = 1.0) -> tuple[int, int, float]:
    """Width, height and real megapixels of a generation node's output, shrunk by `scale` (or
    to `max_side`) for small test files."""
    values = node_values(node)
    base = SIZES_PX.get(str(values.get(kind.params.get("size", ""), "1K")), 1024)
    ratio = str(values.get(kind.params.get("aspect_ratio", ""), "1:1"))
    try:
        a, b = (float(x) for x in ratio.split(":"))
        r = a / b
    except ValueError:
        r = 1.0
    width, height = base * math.sqrt(r), base / math.sqrt(r)
    megapixels = width * height / 1e6
    if max_side and max(width, height) * scale > max_side:
        scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale)), megapixels
