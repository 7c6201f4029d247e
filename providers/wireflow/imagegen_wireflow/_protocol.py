"""Reading Wireflow's answers, in every shape its documents describe (pure: no I/O).

Success bodies may be bare (the docs) or wrapped in ``{"data": ...}`` (the client scripts);
execution ids come as ``executionRuns[0].id`` or ``executionId``, top level or under ``data``;
poll bodies carry ``nodeStates``, ``nodeResults.nodeRuns`` and/or ``finalOutput``, with statuses
in either case; errors are flat ``{"error": "..."}`` or Stripe-style ``{"error": {"type",
"message", "code"}}`` with extra fields beside them. docs/providers/wireflow.md says where each
shape is documented.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from imagegen import InvalidResponseError

from ._graph import GENERATE_NODE_ID

__all__ = ["PollState", "error_parts", "execution_id_from", "parse_poll", "unwrap"]

log = logging.getLogger("imagegen.wireflow")

_STATUS = {
    "queued": "running", "pending": "running", "in_progress": "running", "running": "running",
    "processing": "running", "started": "running",
    "completed": "succeeded", "succeeded": "succeeded", "success": "succeeded",
    "failed": "failed", "error": "failed", "timeout": "failed", "timed_out": "failed",
    "cancelled": "cancelled", "canceled": "cancelled",
}


def unwrap(body: Any) -> Any:
    """``body.get("data", body)``: the resource, whether or not it is wrapped."""
    if isinstance(body, dict) and "data" in body and isinstance(body["data"], (dict, list)):
        return body["data"]
    return body


def normalize_status(raw: Any) -> str:
    """``queued``/``PENDING``/``RUNNING``... -> imagegen's job statuses; unknown -> running, logged."""
    text = str(raw or "").strip().lower()
    if text in _STATUS:
        return _STATUS[text]
    log.warning("wireflow returned an unknown execution status %r; treating it as still running", raw)
    return "running"


def execution_id_from(body: Any) -> str:
    """The id to poll, from an execute (201), run (202) or webhook trigger (202) body."""
    for layer in (body, unwrap(body)):
        if not isinstance(layer, dict):
            continue
        runs = layer.get("executionRuns")
        if isinstance(runs, list) and runs and isinstance(runs[0], dict) and runs[0].get("id"):
            return str(runs[0]["id"])
        if layer.get("executionId"):
            return str(layer["executionId"])
    status = unwrap(body).get("status") if isinstance(unwrap(body), dict) else None
    raise InvalidResponseError(
        f"wireflow accepted the run but returned no execution id to poll (status {status!r}); "
        "without one imagegen cannot follow the execution")


@dataclass
class PollState:
    """One poll, normalized."""

    status: str
    raw_status: str
    urls: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    error: str | None = None
    failed_node: str | None = None
    credits: float | None = None
    progress: float | None = None


def _urls_of_output(output: Any) -> list[str]:
    """A node's raw ``output``: a URL string, ``{url}``, ``{urls}`` or ``{images: [...]}``."""
    if isinstance(output, str):
        return [output] if output.startswith(("http://", "https://")) else []
    if isinstance(output, list):
        return [u for item in output for u in _urls_of_output(item)]
    if not isinstance(output, dict):
        return []
    if isinstance(output.get("images"), list) and output["images"]:
        return _urls_of_output(output["images"])
    if isinstance(output.get("urls"), list) and output["urls"]:
        return _urls_of_output(output["urls"])
    if isinstance(output.get("url"), str):
        return [output["url"]]
    return []


def _pick(nodes: list[tuple[str, list[str]]]) -> list[str]:
    """Outputs of our generation node if present, else of the last node that has any."""
    with_output = [(node_id, urls) for node_id, urls in nodes if urls]
    for node_id, urls in with_output:
        if node_id == GENERATE_NODE_ID:
            return urls
    return with_output[-1][1] if with_output else []


def _from_node_states(states: list[Any]) -> tuple[list[str], list[str]]:
    nodes, texts = [], []
    for state in states:
        if not isinstance(state, dict):
            continue
        urls = [u for u in state.get("outputUrls") or [] if isinstance(u, str)]
        if not urls and isinstance(state.get("outputUrl"), str):
            urls = [state["outputUrl"]]
        nodes.append((str(state.get("nodeId", "")), urls))
        if state.get("nodeId") == GENERATE_NODE_ID and isinstance(state.get("text"), str):
            texts.append(state["text"])
    return _pick(nodes), texts


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _node_runs(layer: dict[str, Any]) -> list[Any]:
    results = layer.get("nodeResults")
    if isinstance(results, dict) and isinstance(results.get("nodeRuns"), list):
        return _list(results["nodeRuns"])
    if isinstance(layer.get("nodeRuns"), list):
        return _list(layer["nodeRuns"])
    runs = layer.get("executionRuns")
    if isinstance(runs, list) and runs and isinstance(runs[0], dict):
        nested = runs[0].get("nodeRuns")
        return nested if isinstance(nested, list) else []
    return []


def _error_text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict):
        return _error_text(value.get("message")) or _error_text(value.get("error"))
    return None


def _failure(layer: dict[str, Any], states: list[Any], runs: list[Any]) -> tuple[str | None, str | None]:
    """The failing node's own error text (preferred) and its id, else the execution's error."""
    for node in [*states, *runs]:
        if isinstance(node, dict) and (text := _error_text(node.get("error"))):
            return text, str(node.get("nodeId") or "") or None
    return _error_text(layer.get("error")), None


def _reported_credits(layer: dict[str, Any]) -> float | None:
    for key in ("creditsUsed", "creditsCharged", "credits", "totalCredits"):
        value = layer.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    usage = layer.get("usage")
    if isinstance(usage, dict):
        return _reported_credits(usage)
    return None


def parse_poll(body: Any) -> PollState:
    """Status, outputs and error of one poll body, whatever its documented shape."""
    layer = unwrap(body)
    if not isinstance(layer, dict):
        raise InvalidResponseError(f"wireflow's poll answer is a {type(layer).__name__}, not an object")
    raw = layer.get("status")
    runs = layer.get("executionRuns")
    if raw is None and isinstance(runs, list) and runs and isinstance(runs[0], dict):
        raw = runs[0].get("status")
    if raw is None:
        raise InvalidResponseError("wireflow's poll answer has no status field")
    state = PollState(status=normalize_status(raw), raw_status=str(raw))
    states = _list(layer.get("nodeStates"))
    runs = _node_runs(layer)
    state.urls, state.texts = _from_node_states(states)
    if not state.urls:
        state.urls = _pick([(str(r.get("nodeId", "")), _urls_of_output(r.get("output")))
                            for r in runs if isinstance(r, dict)])
    if not state.urls:
        state.urls = _urls_of_output(layer.get("finalOutput"))
    if state.status in ("failed", "cancelled"):
        state.error, state.failed_node = _failure(layer, states, runs)
        if state.error is None and str(raw).upper() == "TIMEOUT":
            state.error = "the execution timed out on Wireflow (TIMEOUT)"
    state.credits = _reported_credits(layer)
    progress = [float(s["progress"]) for s in states if isinstance(s, dict)
                and s.get("nodeId") == GENERATE_NODE_ID and isinstance(s.get("progress"), (int, float))]
    state.progress = progress[0] if progress else None
    return state


# -- errors -------------------------------------------------------------------------------


def error_parts(body: Any) -> tuple[str | None, str | None, dict[str, Any]]:
    """(message, code, extra top-level fields) from either error envelope."""
    if not isinstance(body, dict):
        return None, None, {}
    extra = {k: v for k, v in body.items() if k != "error"}
    error = body.get("error")
    if isinstance(error, str):
        return error, None, extra
    if isinstance(error, dict):
        message = error.get("message") if isinstance(error.get("message"), str) else None
        code = error.get("code")
        return message, None if code is None else str(code), extra
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return message, None, extra

