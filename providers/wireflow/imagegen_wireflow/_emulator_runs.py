"""Executions in the Wireflow emulator: which nodes run, when they finish, what they cost.

- A full run (``/run``, a webhook, ``/execute`` without ``targetNodeId``) runs every node.
- ``/execute`` with ``targetNodeId`` runs that node, "+ any upstream dependency that lacks a
  cached result"; every other node is passed through with its cached output, not re-rolled and
  not charged (G1, G3 ``run-node``). The target always recomputes from its current config. A
  paid upstream node whose cached result was made from other parameters than it has now is
  reported in ``staleDependencies`` (G3).
- ``"force": true`` clears every node's cached output first (G3 ``run-force``).
- When an execution completes, each node it ran writes its result to the saved workflow, which
  ``GET /workflows/{id}`` then shows and later targeted runs reuse.

Time comes from the emulator's clock: an execution is queued for ``queued_s``, then runs for
the latency model's delay for the megapixels it generates (a `JobTimeline`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from imagegen.testing import JobTimeline, Reject

from ._catalog import load_catalog
from ._emulator_render import iso
from ._emulator_state import (
    Account,
    Execution,
    NodeResult,
    Workflow,
    credit_needs,
    executable,
    images_per_run,
    node_kind,
    node_values,
    output_size,
)

if TYPE_CHECKING:
    from .emulator import WireflowEmulator

__all__ = ["RunPlan", "finish", "plan_run", "precheck", "start", "status_of"]

_MARKERS = {"[[fail]]": "failed", "[[timeout]]": "timeout", "[[cancel]]": "cancelled"}
_STATUS = {"completed": "COMPLETED", "failed": "FAILED", "timeout": "TIMEOUT", "cancelled": "CANCELLED"}


class RunPlan:
    """The nodes an execution runs, and what the others pass through."""

    def __init__(self, runs: set[str], cached: dict[str, list[str]], stale: list[dict[str, Any]]) -> None:
        self.runs = frozenset(runs)
        self.cached = cached
        #: ``staleDependencies`` entries: ``{"nodeId", "changedKeys"}``
        self.stale = stale


def plan_run(workflow: Workflow, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], *,
             target: str | None = None, force: bool = False) -> RunPlan:
    """Which of `nodes` run; see the module docstring."""
    if force:
        workflow.results.clear()
    ids = [str(node.get("id")) for node in executable(nodes)]
    if target is None:
        return RunPlan(set(ids), {}, [])
    if target not in ids:
        raise Reject(400, f"targetNodeId {target!r} is not a node of this graph", code="invalid_target")
    upstream: dict[str, list[str]] = {node_id: [] for node_id in ids}
    for edge in edges:
        if str(edge.get("target")) in upstream:
            upstream[str(edge.get("target"))].append(str(edge.get("source")))
    by_id = {str(node.get("id")): node for node in executable(nodes)}
    runs, pending = {target}, list(upstream[target])
    stale: list[dict[str, Any]] = []
    while pending:
        node_id = pending.pop()
        if node_id in runs or node_id not in by_id:
            continue
        cached = workflow.results.get(node_id)
        if cached is None:
            runs.add(node_id)
            pending.extend(upstream[node_id])
        elif cached.paid:
            changed = _changed_keys(cached.values, node_values(by_id[node_id]))
            if changed and node_id not in {s["nodeId"] for s in stale}:
                stale.append({"nodeId": node_id, "changedKeys": changed})
    cached_urls = {node_id: list(result.urls) for node_id, result in workflow.results.items()
                   if node_id in by_id and node_id not in runs}
    return RunPlan(runs, cached_urls, stale)


def _changed_keys(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(before) | set(now) if before.get(key) != now.get(key))


def precheck(emu: WireflowEmulator, account: Account, nodes: list[dict[str, Any]], runs: frozenset[str]) -> None:
    """The server-side credit pre-check (G1): 402 with the breakdown when the balance is short."""
    breakdown = [entry for entry in credit_needs(nodes) if entry["nodeId"] in runs]
    required = sum(entry["credits"] for entry in breakdown)
    if required > account.credits:
        emu.counters.incr("insufficient_credits")
        raise Reject(402, f"Insufficient credits. Required: {required:g}, Available: {account.credits:g}",
                     code="insufficient_credits", insufficientCredits=True, requiredCredits=required,
                     availableCredits=account.credits,
                     breakdown=[{k: e[k] for k in ("nodeId", "nodeLabel", "credits")} for e in breakdown])


def start(emu: WireflowEmulator, workflow: Workflow, owner: str, nodes: list[dict[str, Any]],
          edges: list[dict[str, Any]], plan: RunPlan | None = None, *, initial_status: str | None = None) -> Execution:
    """A new execution of `nodes`, queued now on the emulator's clock."""
    plan = plan or plan_run(workflow, nodes, edges)
    megapixels = 0.0
    outcome: str = emu.options.outcome
    for node in executable(nodes):
        if str(node.get("id")) not in plan.runs:
            continue
        kind = node_kind(node)
        if kind is not None and kind.billable:
            megapixels += output_size(node, kind, None)[2] * images_per_run(node, kind)
        prompt = str(node.get("data", {}).get("config", {}).get("prompt", "")) + json.dumps(node)
        outcome = next((o for marker, o in _MARKERS.items() if marker in prompt.lower()), outcome)
    timeline = JobTimeline(emu.clock, queued_s=emu.options.queued_s, running_s=emu.latency.sample(megapixels))
    execution = Execution(
        id=emu.new_id("exec_"), workflow_id=workflow.id, owner=owner, nodes=nodes, edges=edges,
        timeline=timeline, outcome=outcome, runs=plan.runs, outputs=dict(plan.cached),
        initial_status=(initial_status or emu.options.initial_status).upper(),
        batch_id=str(uuid.UUID(hashlib.md5(f"{emu.seed}:{emu.new_id('batch')}".encode()).hexdigest())))
    emu.executions[execution.id] = execution
    workflow.execution_count += 1
    workflow.last_executed_at = iso(emu.clock.time())
    emu.counters.incr("executions")
    return execution


def status_of(emu: WireflowEmulator, execution: Execution) -> str:
    """The canonical (upper-case) status now, finishing the execution when its time is up."""
    phase = execution.phase()
    if phase == "queued":
        return execution.initial_status
    if phase == "running":
        return "RUNNING"
    if not execution.finished:
        finish(emu, execution)
    return _STATUS[execution.outcome]


def finish(emu: WireflowEmulator, execution: Execution) -> None:
    """End `execution`: outputs for the nodes it ran, charges for those, cache on the workflow."""
    execution.finished = True
    execution.timeline.finish()
    if execution.outcome != "completed":
        execution.error = {"failed": emu.options.failure_message,
                           "timeout": "Execution timed out after 600 s",
                           "cancelled": "Execution was cancelled"}[execution.outcome]
        emu.counters.incr(f"executions_{execution.outcome}")
        return  # "If a model fails, you are not charged" (P11)
    charged = 0.0
    workflow = emu.workflows.get(execution.workflow_id)
    for node in executable(execution.nodes):
        node_id, kind = str(node.get("id")), node_kind(node)
        if kind is None or node_id not in execution.runs:
            continue
        charged += _run_node(emu, execution, node, kind)
        if workflow is not None:
            workflow.results[node_id] = NodeResult(execution.outputs.get(node_id, []), node_values(node),
                                                   paid=kind.billable)
    execution.credits_charged = charged
    account = emu.account(execution.owner)
    account.credits = max(0.0, account.credits - charged)
    usd = round(charged * load_catalog().usd_per_credit, 9)
    emu.counters.charge(usd=usd, credits=charged, ref=execution.id)
    emu.counters.incr("executions_completed")


def _run_node(emu: WireflowEmulator, execution: Execution, node: dict[str, Any], kind: Any) -> float:
    """Produce one node's output; return the credits it costs."""
    node_id = str(node.get("id"))
    if kind.name == "input:image":
        url = next((v for k, v in node_values(node).items() if k in ("imageUrl", "image") and v), None)
        execution.outputs[node_id] = [url] if url else []
        emu.counters.incr("reference_images", 1 if url else 0)
    if not kind.billable:
        return 0.0
    width, height, _ = output_size(node, kind, emu.options.output_max_side, emu.options.image_scale)
    count = images_per_run(node, kind)
    mime = "image/jpeg" if kind.emulator_format == "jpeg" else "image/png"
    execution.outputs[node_id] = [
        emu.store_file(emu.image(width, height, kind.emulator_format), mime) for _ in range(count)]
    return float(kind.credits * count)
