"""Every documented error, in both envelopes, to its typed error with Wireflow's words and
the X-Request-Id; 429 wait hints in all their forms; retries with the same key."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from imagegen import (
    AuthenticationError,
    Client,
    InsufficientCreditsError,
    InvalidRequestError,
    InvalidResponseError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import ErrorReply
from imagegen.testing import ApiKeys, Fault, FaultPlan

from .conftest import KEY, config

STYLES = ["flat", "stripe"]


def _raw(env: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, env.server.base_url + path, timeout=10, **kwargs)


def _translate(env: Any, response: httpx.Response) -> Any:
    return env.client().provider("wireflow").status_error(ErrorReply.from_response(response))


@pytest.mark.parametrize("style", STYLES)
def test_missing_authorization_header(make_env: Any, style: str) -> None:
    env = make_env(error_style=style)
    error = _translate(env, _raw(env, "GET", "/workflows"))
    assert isinstance(error, AuthenticationError) and error.status_code == 401
    assert "Missing Authorization header" in error.message and error.request_id.startswith("req_")


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("key", "text", "options"), [
    ("sk two words", "Invalid API key format. Expected: Bearer sk-...", {}),
    ("sk-revoked", "Invalid API key", {"api_keys": ApiKeys(revoked=["sk-revoked"])}),
    ("wf_live_old", "API key has expired", {"api_keys": ApiKeys(expired=["wf_live_old"])}),
    ("sk-unknown", "Invalid API key", {"api_keys": [KEY]}),
])
def test_401_messages(make_env: Any, style: str, key: str, text: str, options: dict[str, Any]) -> None:
    env = make_env(error_style=style, **options)
    client = env.client(api_key=key)
    with pytest.raises(AuthenticationError) as info:
        client.generate("x", provider="wireflow")
    assert text in info.value.message and info.value.status_code == 401
    assert info.value.request_id and info.value.request_id.startswith("req_")
    assert env.counters.get("executions") == 0


@pytest.mark.parametrize("key", ["sk-abc", "wf_live_abc", "wf_test_offline_key"])
def test_both_key_prefixes_are_accepted(make_env: Any, key: str) -> None:
    env = make_env(api_keys={key: {}})
    assert len(env.client(api_key=key).generate("x", provider="wireflow").images) == 1


@pytest.mark.parametrize("style", STYLES)
def test_402_insufficient_credits_keeps_breakdown_and_charges_nothing(make_env: Any, style: str) -> None:
    env = make_env(error_style=style, credits=5)
    with pytest.raises(InsufficientCreditsError) as info:
        env.client().generate("x", provider="wireflow", n=2)
    error = info.value
    assert (error.required, error.available, error.status_code) == (14, 5, 402)
    assert "Insufficient credits. Required: 14, Available: 5" in error.message
    assert error.body["breakdown"] == [{"nodeId": "generate", "nodeLabel": "Nano Banana 2", "credits": 14}]
    assert error.retryable is False and error.request_id
    assert env.counters.get("executions") == 0 and env.counters.total_credits == 0


def test_403_missing_scope(make_env: Any) -> None:
    env = make_env(api_keys={KEY: {"scopes": ["workflows:read", "executions:read"]}})
    with pytest.raises(PermissionDeniedError) as info:
        env.client().generate("x", provider="wireflow")
    assert "Forbidden" in info.value.message and "scope" in info.value.message


@pytest.mark.parametrize("scope", ["workflows:read", "executions:read"])
def test_poll_accepts_either_read_scope(make_env: Any, scope: str) -> None:
    env = make_env(api_keys={"sk-writer": {"user": "u1"}, "sk-reader": {"user": "u1", "scopes": [scope]}})
    job = env.client(api_key="sk-writer").submit("x", provider="wireflow")
    time.sleep(0.1)
    assert env.client(api_key="sk-reader").wait(job.id, timeout=10).images


def test_another_users_execution_is_not_found(make_env: Any) -> None:
    env = make_env()
    job = env.client(api_key="sk-alice").submit("x", provider="wireflow")
    with pytest.raises(NotFoundError):
        env.client(api_key="sk-bob").status(job.id)


@pytest.mark.parametrize("style", STYLES)
def test_404_unknown_execution(make_env: Any, style: str) -> None:
    env = make_env(error_style=style)
    with pytest.raises(NotFoundError) as info:
        env.client().status("wireflow:exec_missing")
    assert "Execution not found" in info.value.message and info.value.request_id


def test_409_stale_write_keeps_fields(make_env: Any) -> None:
    env = make_env(dialect="scripts")
    env.client().generate("x", provider="wireflow")
    workflow = next(iter(env.emulator.workflows.values()))
    response = _raw(env, "PUT", f"/workflows/{workflow.id}", headers={"Authorization": f"Bearer {KEY}"},
                    json={"name": "renamed", "baseUpdatedAt": "2020-01-01T00:00:00.000Z"})
    error = _translate(env, response)
    assert type(error) is ProviderError and error.status_code == 409 and error.code == "stale_write"
    assert error.body["currentUpdatedAt"] == workflow.updated_at


@pytest.mark.parametrize("style", STYLES)
def test_400_workflow_not_active(make_env: Any, style: str) -> None:
    env = make_env(error_style=style)
    client = env.client()
    client.generate("x", provider="wireflow")
    workflow = next(iter(env.emulator.workflows.values()))
    _raw(env, "PUT", f"/workflows/{workflow.id}", headers={"Authorization": f"Bearer {KEY}"},
         json={"isActive": False})
    with pytest.raises(InvalidRequestError) as info:
        client.generate("y", provider="wireflow")
    assert "Workflow is not active" in info.value.message
    assert info.value.status_code == 400 and info.value.request_id.startswith("req_")


@pytest.mark.parametrize("style", STYLES)
def test_422_invalid_graph_lists_violations(make_env: Any, style: str) -> None:
    env = make_env(error_style=style)
    graph = {"name": "bad", "nodes": [{"id": "a", "data": {"nodeType": "input:text"}},
                                      {"id": "b", "data": {"nodeType": "generate:nano_banana_2"}}],
             "edges": [{"source": "a", "target": "b", "sourceHandle": "out-prompt", "targetHandle": "in-text"}]}
    response = _raw(env, "POST", "/workflows", headers={"Authorization": f"Bearer {KEY}"}, json=graph)
    error = _translate(env, response)
    assert isinstance(error, InvalidRequestError) and error.status_code == 422
    assert "has no input 'in-text'" in error.message
    strict_off = _raw(env, "POST", "/workflows?strict=false", headers={"Authorization": f"Bearer {KEY}"},
                      json=graph)
    assert strict_off.status_code == 201


def test_400_missing_fields_and_empty_graph(env: Any) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    missing = _translate(env, _raw(env, "POST", "/workflows", headers=auth, json={"name": "x"}))
    assert "Missing required fields: name, nodes, edges" in missing.message
    empty = _translate(env, _raw(env, "POST", "/workflows", headers=auth, json={"name": "x", "nodes": [], "edges": []}))
    assert "Cannot save workflow with 0 nodes and 0 edges" in empty.message


@pytest.mark.parametrize("style", STYLES)
def test_5xx_is_retried_then_reported_with_request_id(make_env: Any, style: str) -> None:
    env = make_env(error_style=style, faults=FaultPlan.script("server_error", path="/execute$"))
    assert env.client().generate("x", provider="wireflow").images
    assert env.counters.faults == {"server_error": 1} and env.counters.get("executions") == 1
    env.emulator.faults = FaultPlan.script(*["server_error"] * 4, path="/execute$")
    with pytest.raises(ProviderUnavailableError) as info:
        env.client(max_retries=2).generate("x", provider="wireflow")
    assert info.value.status_code == 503 and info.value.request_id
    assert env.counters.get("executions") == 1


def test_html_error_page_is_described(make_env: Any) -> None:
    env = make_env(faults=FaultPlan.script(*["html"] * 5, path="/workflows$"))
    with pytest.raises(ProviderUnavailableError) as info:
        env.client(max_retries=1).generate("x", provider="wireflow")
    assert "HTML page" in info.value.message and "502 Bad Gateway" in info.value.message


# -- 429 -------------------------------------------------------------------------------------

def test_429_then_success_with_retry_after(make_env: Any) -> None:
    env = make_env(faults=FaultPlan.script(Fault("rate_limit", retry_after=0), path="/execute$"))
    result = env.client().generate("x", provider="wireflow")
    assert result.images and env.counters.faults == {"rate_limit": 1}
    assert env.counters.get("executions") == 1


@pytest.mark.parametrize(("options", "hint"), [
    ({"retry_after_header": True}, "header"),
    ({"retry_after_header": False}, "reset"),  # G3: only X-RateLimit-Reset (C8)
    ({"retry_after_header": False, "retry_after_body": "seconds"}, "reset"),
])
def test_429_wait_hint_from_header_or_reset(make_env: Any, options: dict[str, Any], hint: str) -> None:
    env = make_env(executions_per_minute=1, window_s=30, **options)
    env.client().generate("first", provider="wireflow")
    with pytest.raises(RateLimitError) as info:
        env.client(max_retries=0).generate("second", provider="wireflow")
    error = info.value
    assert error.status_code == 429 and error.request_id
    assert "Too many workflow executions" in error.message
    assert 0 < error.retry_after <= 31
    assert env.counters.get("executions") == 1 and env.counters.get("rate_limited") == 1


def test_the_execution_cap_is_a_core_rate_limit_refused_locally(make_env: Any) -> None:
    env = make_env()
    client = env.client(executions_per_minute=1)
    assert client.provider("wireflow").rate_limits().calls_per_minute == 1
    client.generate("first", provider="wireflow")
    with pytest.raises(RateLimitError) as info:  # the next slot is a minute away: past the deadline
        client.generate("second", provider="wireflow", timeout=2)
    assert info.value.status_code is None and 50 < info.value.retry_after <= 60
    assert env.counters.get("executions") == 1 and env.counters.get("rate_limited") == 0  # nothing was sent


def test_wait_hint_order_and_body_forms(env: Any) -> None:
    provider = env.client().provider("wireflow")

    def hint(headers: dict[str, str], body: Any = None) -> float | None:
        return provider.status_error(ErrorReply(429, httpx.Headers(headers), body)).retry_after

    now = time.time()
    assert hint({"Retry-After": "42", "X-RateLimit-Reset": str(int(now + 5))}) == 42
    assert 4 <= hint({"X-RateLimit-Reset": str(int(now + 5))}) <= 5
    past = {"X-RateLimit-Reset": str(int(now - 5))}
    assert hint(past, {"error": "slow", "retryAfter": 7}) == 7  # a past reset falls to the body's seconds
    assert 9 <= hint(past, {"error": "slow", "retryAfter": int(now + 10)}) <= 10  # the body's epoch
    assert hint({}) is None


@pytest.mark.parametrize(("settings", "cap"), [({}, 10), ({"executions_per_minute": 4}, 4),
                                                ({"requests_per_minute": 3, "executions_per_minute": 4}, 3)])
def test_every_plan_is_capped_at_ten_executions_a_minute(env: Any, settings: dict[str, Any], cap: float) -> None:
    overrides = {"executions_per_minute": None, **settings}
    assert Client(config(env.server, **overrides)).provider("wireflow").rate_limits().calls_per_minute == cap


def test_truncated_execute_answer_is_retried_with_the_same_key(make_env: Any) -> None:
    env = make_env(faults=FaultPlan.script("truncate", path="/execute$"))
    result = env.client().generate("x", provider="wireflow")
    assert result.images
    assert env.counters.faults == {"truncate": 1}
    assert env.counters.get("executions") == 1 and env.counters.get("idempotent_replays") == 1
    assert env.counters.total_credits == 7


def test_failed_execution_is_a_job_failed_error_with_the_node_text(make_env: Any) -> None:
    env = make_env(outcome="failed", failure_message="FAL: NSFW content detected")
    with pytest.raises(JobFailedError) as info:
        env.client().generate("x", provider="wireflow")
    assert "FAL: NSFW content detected" in info.value.message and "'generate'" in info.value.message
    assert env.counters.total_credits == 0  # a failed node is not charged (P11)


@pytest.mark.parametrize(("outcome", "status", "text"), [
    ("timeout", "failed", "timed out"), ("cancelled", "cancelled", "cancelled")])
def test_timeout_and_cancelled_are_terminal(make_env: Any, outcome: str, status: str, text: str) -> None:
    env = make_env(outcome=outcome, status_case="lower")
    client = env.client()
    job = client.submit("x", provider="wireflow")
    with pytest.raises(JobFailedError) as info:
        client.wait(job.id, timeout=10)
    assert text in info.value.message
    assert client.status(job.id).status == status


def test_completed_without_outputs_is_no_image(make_env: Any) -> None:
    env = make_env(faults=FaultPlan.script(Fault("malformed", body=b'{"status": "COMPLETED"}'),
                                           path="/poll$"), latency_s=0)
    from imagegen import NoImageReturnedError

    with pytest.raises(NoImageReturnedError):
        env.client().generate("x", provider="wireflow")


def test_poll_without_status_is_invalid_response(make_env: Any) -> None:
    # Polls ride out a few unreadable answers (Provider.max_poll_errors); these never stop.
    env = make_env(faults=FaultPlan.random({"malformed": 1.0}, path="/poll$"))
    with pytest.raises(InvalidResponseError) as info:
        env.client().generate("x", provider="wireflow")
    assert "no status" in info.value.message
