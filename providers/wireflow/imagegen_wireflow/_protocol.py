"""Reading Wireflow's answers, in every shape its documents describe (pure: no I/O).

Success bodies may be bare or wrapped in ``{"data": ...}`` (C15); execution ids come as
``executionRuns[0].id`` or ``executionId``, top level or under ``data`` (C3); poll bodies
carry ``nodeStates``, ``nodeResults.nodeRuns`` and/or ``finalOutput``, with statuses in
either case (C14, C19); errors are flat ``{"error": "..."}`` or Stripe-style
``{"error": {"type", "message", "code"}}`` with extra fields beside them (C7).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from imagegen import (
    AuthenticationError,
    ImageGenError,
    InsufficientCreditsError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen._http import parse_wait_hint

from ._graph import GENERATE_NODE_ID

__all__ = ["PollState", "error_from", "execution_id_from", "parse_poll", "rate_limit_wait", "unwrap"]

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

_ADVICE = {
    401: "check the API key (WIREFLOW_API_KEY or providers.<name>.api_key); keys start with sk- or wf_live_",
    402: "top up credits in Wireflow's billing settings, or route to another provider",
    403: "the key lacks a scope for this call (workflows:read/write/execute, executions:read); "
         "create a key with those scopes",
    404: "the workflow or execution does not exist for this key",
    409: "someone else changed the workflow; read it again and retry",
    413: "the request body is too large",
}


def _error_parts(body: Any) -> tuple[str | None, str | None, str | None, dict[str, Any]]:
    """(message, type, code, extra top-level fields) from either error envelope."""
    if not isinstance(body, dict):
        return None, None, None, {}
    extra = {k: v for k, v in body.items() if k != "error"}
    error = body.get("error")
    if isinstance(error, str):
        return error, None, None, extra
    if isinstance(error, dict):
        message = error.get("message") if isinstance(error.get("message"), str) else None
        return message, error.get("type"), error.get("code"), extra
    message = body.get("message") if isinstance(body.get("message"), str) else None
    return message, None, None, extra


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def rate_limit_wait(headers: Any, body_hint: Any = None) -> float | None:
    """Seconds to wait after a 429 (spec §9): ``Retry-After`` seconds, else a future
    ``X-RateLimit-Reset`` (Unix time), else the body's ``retryAfter`` (seconds or Unix time)."""
    wait = parse_wait_hint(headers.get("retry-after"))
    if wait is None:
        reset = parse_wait_hint(headers.get("x-ratelimit-reset"))
        wait = reset if reset else None
    if wait is None:
        wait = parse_wait_hint(body_hint)
    return wait


def error_from(status: int, headers: Any, body: Any, *, provider: str, raw_text: str = "") -> ImageGenError:
    """The typed imagegen error for one Wireflow error response.

    ``body`` is the parsed JSON (or None when the body was not JSON; ``raw_text`` then
    describes it). The request id from ``X-Request-Id`` goes on every error.
    """
    request_id = headers.get("x-request-id")
    message, kind, code, extra = _error_parts(body)
    text = message or code or raw_text or f"HTTP {status}"
    detail = f"{text} [{code}]" if code and message and code not in message else text
    kw: dict[str, Any] = {"provider": provider, "status_code": status, "request_id": request_id,
                          "body": body if body is not None else raw_text}
    advice = _ADVICE.get(status)
    full = f"{provider}: {detail}" + (f" — {advice}" if advice else "")
    if status == 401:
        return AuthenticationError(full, **kw)
    if status == 402:
        required, available = _number(extra.get("requiredCredits")), _number(extra.get("availableCredits"))
        credits_error = InsufficientCreditsError(full, required=required, available=available, **kw)
        credits_error.breakdown = list(extra.get("breakdown") or [])  # type: ignore[attr-defined]
        return credits_error
    if status == 403:
        return PermissionDeniedError(full, **kw)
    if status == 404:
        return NotFoundError(full, **kw)
    if status == 429:
        wait = rate_limit_wait(headers, extra.get("retryAfter"))
        hint = f"; retry in {wait:.0f} s" if wait is not None else ""
        return RateLimitError(f"{provider}: {detail}{hint} (Wireflow caps executions at 10 per minute)",
                              retry_after=wait, **kw)
    if status in (400, 413, 422):
        if detail == "Workflow is not active":
            full = f"{provider}: {detail} — activate the workflow in Wireflow's editor (Settings > isActive)"
        violations = extra.get("violations")
        if isinstance(violations, list) and violations:
            rules = "; ".join(str(v.get("message") or v.get("rule")) for v in violations[:3] if isinstance(v, dict))
            full = f"{full} ({rules})"
        error = InvalidRequestError(full + (f" (request_id={request_id})" if request_id else ""))
        for key, value in {**kw, "code": code, "type": kind}.items():
            setattr(error, key, value)
        return error
    if status >= 500:
        return ProviderUnavailableError(f"{provider}: {detail} — Wireflow had a server error; retry shortly", **kw)
    other = ProviderError(full, retryable=False, **kw)
    other.code = code  # type: ignore[attr-defined]
    return other
