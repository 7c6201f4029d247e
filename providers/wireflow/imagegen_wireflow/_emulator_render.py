"""How the emulator words its answers, variant by variant (spec §13, §14)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ._emulator_state import (
    EmulatorOptions,
    Execution,
    Workflow,
    executable,
    node_kind,
    node_values,
)

__all__ = ["envelope", "error_body", "execute_body", "iso", "poll_body", "workflow_body"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "insufficient_credits_error",
                403: "permission_error", 404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_error"}


def iso(epoch: float) -> str:
    """``2025-03-15T10:30:00.000Z``: milliseconds and Z, as the docs show."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def envelope(options: EmulatorOptions, resource: Any, **siblings: Any) -> Any:
    """Bare (docs) or ``{"data": ..., **siblings}`` (client scripts)."""
    if options.envelope == "data":
        return {"data": resource, **siblings}
    return resource


def error_body(options: EmulatorOptions, status: int, message: str, *, code: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """Flat ``{"error": "<text>", ...}`` (P9) or Stripe-style (G1), extra fields beside it."""
    if options.error_style == "stripe":
        error: dict[str, Any] = {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}
        if code:
            error["code"] = code
        return {"error": error, **extra}
    return {"error": message, **extra}


def workflow_body(workflow: Workflow, *, full: bool = True, absolute: Any = None) -> dict[str, Any]:
    """A workflow as the API shows it; `full` adds the graph, each node with the output, status
    and error the last run wrote (null until then, G2), URLs made absolute by `absolute`."""
    body: dict[str, Any] = {
        "id": workflow.id, "name": workflow.name, "description": workflow.description,
        "webhookId": workflow.webhook_id, "webhookUrl": None, "isActive": workflow.is_active,
        "isPublished": workflow.link_permission == "view", "executionCount": workflow.execution_count,
        "lastExecutedAt": workflow.last_executed_at, "tags": workflow.tags,
        "createdAt": workflow.created_at, "updatedAt": workflow.updated_at,
    }
    if full:
        body.update(nodes=[_saved_node(node, workflow, absolute) for node in workflow.nodes], edges=workflow.edges,
                    userId=f"user_{workflow.owner[-6:]}", linkPermission=workflow.link_permission, mediaId=None)
    return body


def _saved_node(node: dict[str, Any], workflow: Workflow, absolute: Any) -> dict[str, Any]:
    result = workflow.results.get(str(node.get("id")))
    urls = [absolute(url) if absolute else url for url in result.urls] if result else []
    output = {"url": urls[0], "urls": urls} if urls else None
    data = {**(node.get("data") or {}), "output": output, "status": "COMPLETED" if result else None, "error": None}
    return {**node, "data": data}


def _node_output(options: EmulatorOptions, urls: list[str]) -> Any:
    if not urls:
        return None
    if options.node_output == "string":
        return urls[0]
    if options.node_output == "url":
        return {"url": urls[0]} if len(urls) == 1 else {"url": urls[0], "urls": urls}
    return {"images": [{"url": url} for url in urls]}


_TERMINAL = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED")


def _node_status(node: dict[str, Any], status: str, ran: bool) -> str:
    """Per node (PENDING | RUNNING | COMPLETED | FAILED, G2): inputs, and nodes a targeted run
    passes through with their cached output, are done at once; generators follow the execution;
    before RUNNING everything else is PENDING."""
    kind = node_kind(node)
    if not ran:
        return "COMPLETED"
    if status != "RUNNING" and status not in _TERMINAL:
        return "PENDING"
    if kind is None or not kind.billable:
        return "COMPLETED"
    return "FAILED" if status == "TIMEOUT" else status


def _node_entries(options: EmulatorOptions, execution: Execution, status: str,
                  absolute: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(nodeStates, nodeRuns) for every executable node."""
    states, runs = [], []
    for node in executable(execution.nodes):
        node_id = str(node.get("id"))
        kind = node_kind(node)
        ran = node_id in execution.runs
        node_status = _node_status(node, status, ran)
        urls = [absolute(p) for p in execution.outputs.get(node_id, [])]
        error = execution.error if node_status == "FAILED" else None
        text = None
        if kind is not None and kind.category == "input" and kind.value_param == "prompt":
            text = node_values(node).get("prompt")
        states.append({
            "nodeId": node_id, "label": (node.get("data") or {}).get("label"),
            "status": options.status_text(node_status), "error": error,
            "outputUrl": urls[0] if urls else None, "outputUrls": urls, "text": text,
            "progress": execution.timeline.progress() if kind and kind.billable and ran else 1.0,
            "requestId": f"fal-{execution.id[-8:]}-{node_id}" if kind and kind.billable else None,
        })
        runs.append({"nodeId": node_id, "status": options.status_text(node_status),
                     "output": _node_output(options, urls), "error": error})
    return states, runs


def _final_urls(execution: Execution, absolute: Any) -> list[str]:
    """The generated media, in graph order (inputs' URLs only when nothing was generated)."""
    nodes = executable(execution.nodes)
    made = [str(n.get("id")) for n in nodes if (kind := node_kind(n)) is not None and kind.billable]
    ids = [i for i in made if execution.outputs.get(i)] or list(execution.outputs)
    return [absolute(url) for node_id in ids for url in execution.outputs.get(node_id, [])]


def poll_body(options: EmulatorOptions, execution: Execution, status: str, absolute: Any) -> dict[str, Any]:
    """The poll answer in the selected shape (C14): see `EmulatorOptions.poll_shape`."""
    states, runs = _node_entries(options, execution, status, absolute)
    shown = options.status_text(status)
    final = _final_urls(execution, absolute) if status == "COMPLETED" else []
    extra: dict[str, Any] = {}
    if options.report_credits and status == "COMPLETED":
        extra["creditsUsed"] = execution.credits_charged
    if execution.error and status in ("FAILED", "TIMEOUT"):
        extra["error"] = execution.error
    final_output = {"url": final[0]} if final else None
    if options.poll_shape == "docs":
        return {"status": shown, "nodeResults": {"nodeRuns": runs}, "nodeStates": states, **extra}
    if options.poll_shape == "scripts":
        return {"status": shown, "nodeStates": states, "nodeResults": {"nodeRuns": runs},
                "finalOutput": final_output, **extra}
    if options.poll_shape == "nodeRuns":
        return {"status": shown, "nodeResults": {"nodeRuns": runs}, **extra}
    if options.poll_shape == "nodeStates":
        return {"status": shown, "nodeStates": states, **extra}
    if options.poll_shape == "finalOutput":
        return {"data": {"status": shown, "nodeResults": {"nodeRuns": []}, "finalOutput": final_output, **extra}}
    return {"data": {"status": shown, "nodeStates": states, "nodeResults": {"nodeRuns": runs},
                     "finalOutput": final_output, **extra}}


def execute_body(options: EmulatorOptions, execution: Execution) -> dict[str, Any]:
    """The execute answer (C3): P6's ``executionRuns``, G1's ``{executionId, status}``, or under data."""
    status = options.status_text("RUNNING")
    if options.execute_shape == "executionId":
        return {"executionId": execution.id, "status": status}
    if options.execute_shape == "data":
        return {"data": {"executionId": execution.id, "status": status}}
    nodes = [{"nodeId": str(n.get("id")), "status": options.status_text("PENDING"), "output": None}
             for n in executable(execution.nodes)]
    return {
        "workflowId": execution.workflow_id,
        "batchId": execution.batch_id,
        "executionRuns": [{
            "id": execution.id, "startTime": iso(execution.created), "endTime": None, "status": status,
            "error": None, "nodeRuns": nodes, "batchId": execution.batch_id, "runIndexInBatch": 0,
            "inputIndex": 0,
        }],
    }
