"""The emulator on its own, over raw HTTP: the documented shapes, headers and bookkeeping."""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from imagegen import ImageRequest
from imagegen_wireflow._graph import build_graph
from imagegen_wireflow.emulator import create_emulator
from imagegen_wireflow.provider import WireflowProvider

from .conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}"}
#: httpx's calls with room for a loaded CI machine (its default 5 s read timeout ran out once at
#: load 8 while the emulator was healthy); the emulator's own latency stays what each test sets.
http = SimpleNamespace(**{verb: functools.partial(getattr(httpx, verb), timeout=30.0)
                          for verb in ("get", "post", "put", "delete")})


def _graph(prompt: str = "a cow", n: int = 1) -> dict[str, Any]:
    graph = build_graph(ImageRequest(prompt=prompt, n=n), WireflowProvider.models()[0], [], where="params")
    return {"nodes": graph.nodes, "edges": graph.edges}


def _create(env: Any, **extra: Any) -> tuple[httpx.Response, str]:
    response = http.post(env.server.base_url + "/api/v1/workflows", headers=AUTH,
                          json={"name": "My Workflow", **_graph(), **extra})
    body = response.json()
    return response, body.get("data", body)["id"]


def test_docs_dialect_shapes(make_env: Any) -> None:
    env = make_env(dialect="docs", latency_s=5)
    created, workflow_id = _create(env)
    assert created.status_code == 201 and created.json()["name"] == "My Workflow" and "meta" not in created.json()
    listed = http.get(env.server.base_url + "/workflows", headers=AUTH)
    assert isinstance(listed.json(), list) and listed.json()[0]["id"] == workflow_id
    execute = http.post(f"{env.server.base_url}/workflows/{workflow_id}/execute", headers=AUTH, json=_graph())
    body = execute.json()
    assert execute.status_code == 201 and body["workflowId"] == workflow_id
    run = body["executionRuns"][0]
    assert run["status"] == "RUNNING" and execute.headers["location"].endswith(f"/executions/{run['id']}/poll")
    assert run["startTime"].endswith("Z") and len(run["startTime"]) == 24
    poll = http.get(f"{env.server.base_url}/workflows/executions/{run['id']}/poll", headers=AUTH).json()
    # P2's {status, nodeResults} plus the nodeStates the published client reads (G2)
    assert set(poll) == {"status", "nodeResults", "nodeStates"} and poll["status"] == "RUNNING"


def test_scripts_dialect_shapes(make_env: Any) -> None:
    env = make_env(dialect="scripts")
    created, workflow_id = _create(env)
    assert created.json() == {"data": {"id": workflow_id, "name": "My Workflow"},
                              "meta": {"migrations": [], "warnings": []}}
    assert isinstance(http.get(env.server.base_url + "/workflows", headers=AUTH).json()["data"], list)
    execute = http.post(f"{env.server.base_url}/workflows/{workflow_id}/execute", headers=AUTH, json=_graph())
    assert set(execute.json()) == {"executionId", "status"}
    time.sleep(0.1)
    poll = http.get(f"{env.server.base_url}/workflows/executions/{execute.json()['executionId']}/poll",
                     headers=AUTH).json()  # top level: what the published client reads (G2, G3)
    assert poll["status"] == "COMPLETED" and poll["creditsUsed"] == 7
    gen = next(s for s in poll["nodeStates"] if s["nodeId"] == "generate")
    assert gen["outputUrl"] == poll["finalOutput"]["url"] == gen["outputUrls"][0]
    assert gen["progress"] == 1.0 and gen["requestId"]
    error = http.get(env.server.base_url + "/workflows/nope", headers=AUTH).json()
    assert error == {"error": {"type": "not_found_error", "message": "Workflow not found", "code": "not_found"}}


def test_every_answer_has_a_request_id_and_rate_headers(env: Any) -> None:
    ok = http.get(env.server.base_url + "/workflows", headers=AUTH)
    assert ok.headers["x-request-id"].startswith("req_")
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(ok.headers)
    assert int(ok.headers["x-ratelimit-reset"]) > time.time() - 1
    missing = http.get(env.server.base_url + "/workflows")
    assert missing.status_code == 401 and missing.headers["x-request-id"].startswith("req_")
    assert missing.json() == {"error": "Missing Authorization header"}


def test_idempotency_replays_the_first_answer(env: Any) -> None:
    _, workflow_id = _create(env)
    url = f"{env.server.base_url}/workflows/{workflow_id}/execute"
    first = http.post(url, headers={**AUTH, "Idempotency-Key": "k1"}, json=_graph("one"))
    again = http.post(url, headers={**AUTH, "Idempotency-Key": "k1"}, json=_graph("different body"))
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["idempotent-replayed"] == "true" and again.headers["location"] == first.headers["location"]
    assert env.counters.get("executions") == 1 and env.counters.get("idempotent_replays") == 1


def test_run_estimate_usage_upload_and_crud(make_env: Any) -> None:
    env = make_env(credits=100)
    base = env.server.base_url
    _, workflow_id = _create(env)
    describe = http.get(f"{base}/workflows/{workflow_id}/run", headers=AUTH).json()["data"]
    assert [i["nodeId"] for i in describe["inputs"]] == ["prompt"]
    run = http.post(f"{base}/workflows/{workflow_id}/run", headers=AUTH, json={"inputs": {"prompt": "hi"}})
    assert run.status_code == 202 and run.json()["data"]["status"] == "RUNNING"
    estimate = http.post(f"{base}/workflows/{workflow_id}/estimate", headers=AUTH, json={}).json()["data"]
    assert (estimate["estimatedCredits"], estimate["sufficient"], estimate["estimateComplete"]) == (7, True, True)
    time.sleep(0.1)
    http.get(f"{base}/workflows/executions/{run.json()['data']['executionId']}", headers=AUTH)
    assert http.get(f"{base}/developer/usage", headers=AUTH).json()["credits"] == 93
    unreachable = http.post(f"{base}/media/upload", headers=AUTH, json={"url": "https://cdn.example/x.png"})
    assert unreachable.status_code == 400 and "Could not fetch" in unreachable.json()["error"]
    hosted = http.post(f"{base}/media/upload", headers=AUTH, files={"file": ("a.png", b"png-bytes", "image/png")})
    rehosted = http.post(f"{base}/media/upload", headers=AUTH, json={"url": hosted.json()["data"]["url"]})
    copy_url = rehosted.json()["data"]["url"]
    assert copy_url != hosted.json()["data"]["url"] and http.get(copy_url).content == b"png-bytes"
    current = http.get(f"{base}/workflows/{workflow_id}", headers=AUTH).json()
    put = http.put(f"{base}/workflows/{workflow_id}", headers=AUTH,
                    json={"name": "renamed", "baseUpdatedAt": current["updatedAt"]})
    assert put.status_code == 200 and put.json()["updatedAt"] > current["updatedAt"]
    link = http.put(f"{base}/workflows/{workflow_id}", headers=AUTH, json={"linkPermission": "view"})
    assert link.status_code == 400
    updated = http.post(f"{base}/workflows", headers=AUTH, json={"id": workflow_id, "name": "again", **_graph()})
    assert updated.status_code == 200 and len(env.emulator.workflows) == 1  # C17: POST with id updates
    assert http.delete(f"{base}/workflows/{workflow_id}", headers=AUTH).json() == {"id": workflow_id,
                                                                                    "deleted": True}
    assert http.get(f"{base}/workflows/{workflow_id}", headers=AUTH).status_code == 404


def test_execute_with_empty_graph_runs_the_saved_one_with_inputs(env: Any) -> None:
    _, workflow_id = _create(env)
    response = http.post(f"{env.server.base_url}/workflows/{workflow_id}/execute", headers=AUTH,
                          json={"inputs": {"prompt": "a neon city at night, cinematic"}})  # P1's quick start
    execution = env.emulator.executions[response.json()["executionRuns"][0]["id"]]
    assert execution.nodes[0]["data"]["config"]["prompt"] == "a neon city at night, cinematic"


def test_402_run_and_lint_gate(make_env: Any) -> None:
    env = make_env(credits=3)
    _, workflow_id = _create(env)
    poor = http.post(f"{env.server.base_url}/workflows/{workflow_id}/run", headers=AUTH, json={})
    assert poor.status_code == 402 and poor.json()["requiredCredits"] == 7 and poor.json()["insufficientCredits"]
    cyclic = _graph()
    cyclic["edges"].append({"source": "generate", "target": "prompt", "sourceHandle": "out-images",
                            "targetHandle": "in-prompt"})
    bad = http.post(env.server.base_url + "/workflows", headers=AUTH, json={"name": "x", **cyclic})
    rules = {v["rule"] for v in bad.json()["violations"]}
    assert bad.status_code == 422 and {"bad-target-handle"} <= rules


def test_options_are_checked_and_dialects_preset() -> None:
    with pytest.raises(TypeError, match="unknown wireflow emulator option"):
        create_emulator(dialekt="docs")
    with pytest.raises(ValueError, match="unknown dialect"):
        create_emulator(dialect="blog")
    scripts = create_emulator(dialect="scripts", poll_shape="nodeStates").options
    assert (scripts.envelope, scripts.error_style, scripts.poll_shape) == ("data", "stripe", "nodeStates")
