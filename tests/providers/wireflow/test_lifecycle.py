"""Workflow lifecycle: one workflow per graph shape (remembered across processes),
idempotent executes, submit/status, webhook trigger mode, and finishing a job from a
process other than the one that submitted it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegen import ImageRequest, InvalidRequestError
from imagegen._jobstore import default_data_dir
from imagegen.testing import synth_image
from imagegen_wireflow._graph import build_graph
from imagegen_wireflow.provider import WireflowProvider

from .conftest import FAST_POLLS, KEY


def test_one_workflow_per_graph_shape(env: Any) -> None:
    client = env.client()
    for prompt, ratio in (("a", "1:1"), ("b", "16:9"), ("c", "4:5")):
        client.generate(prompt, provider="wireflow", aspect_ratio=ratio)
    assert env.counters.get("workflows_created") == 1 and env.counters.get("executions") == 3
    client.edit("d", images=[synth_image(16, 16, "png")], provider="wireflow")
    client.generate("e", provider="wireflow", model="nano_banana_pro")
    assert env.counters.get("workflows_created") == 3


def test_workflow_ids_persist_for_other_processes(env: Any) -> None:
    env.client().generate("a", provider="wireflow")
    path = default_data_dir() / "wireflow" / "workflows.json"
    stored = json.loads(path.read_text())
    assert [entry["id"] for entry in stored.values()] == list(env.emulator.workflows)
    assert KEY not in path.read_text()  # only a fingerprint of the key
    env.client().generate("b", provider="wireflow")  # a fresh provider instance reads the file
    assert env.counters.get("workflows_created") == 1
    env.client(persist_workflows=False).generate("c", provider="wireflow")
    assert env.counters.get("workflows_created") == 2


async def test_concurrent_submits_of_a_new_shape_create_one_workflow(env: Any) -> None:
    async with env.async_client() as client:
        results = await asyncio.gather(*(client.generate(f"p{i}", provider="wireflow") for i in range(4)))
    assert all(r.images for r in results)
    assert env.counters.get("workflows_created") == 1 and env.counters.get("executions") == 4


def test_deleted_workflow_is_created_again(env: Any) -> None:
    client = env.client()
    client.generate("a", provider="wireflow")
    workflow_id = next(iter(env.emulator.workflows))
    httpx.delete(f"{env.server.base_url}/workflows/{workflow_id}", headers={"Authorization": f"Bearer {KEY}"})
    assert client.generate("b", provider="wireflow").images
    assert env.counters.get("workflows_created") == 2


def test_run_mode_keeps_one_workflow_per_param_set(env: Any) -> None:
    client = env.client(execute_mode="run")
    client.generate("a", provider="wireflow", aspect_ratio="1:1")
    client.generate("b", provider="wireflow", aspect_ratio="1:1")
    result = client.generate("c", provider="wireflow", aspect_ratio="16:9")
    assert (result.images[0].width, result.images[0].height) == (1365, 768)
    assert env.counters.get("workflows_created") == 2
    assert env.counters.calls["POST /workflows/{wid}/run"] == 3


def test_caller_idempotency_key_replays_across_clients(env: Any) -> None:
    first = env.client().generate("same", provider="wireflow", options={"idempotency_key": "order-42"})
    again = env.client().generate("same", provider="wireflow", options={"idempotency_key": "order-42"})
    assert [i.url for i in first.images] == [i.url for i in again.images]
    assert env.counters.get("executions") == 1 and env.counters.get("idempotent_replays") == 1
    env.client().generate("same", provider="wireflow", options={"idempotency_key": "order-43"})
    env.client().generate("same", provider="wireflow")  # no key: each call is new
    env.client().generate("same", provider="wireflow")
    assert env.counters.get("executions") == 4 and env.counters.total_credits == 28


def test_idempotency_key_with_a_split_n_is_refused(env: Any) -> None:
    with pytest.raises(InvalidRequestError, match="idempotency_key"):
        env.client().generate("x", provider="wireflow", n=8, options={"idempotency_key": "k"})
    assert env.counters.calls.get("total", 0) == 0


def test_submit_then_status_until_done(make_env: Any) -> None:
    env = make_env(latency_s=0.3, dialect="scripts")
    client = env.client()
    job = client.submit("a fox", provider="wireflow")
    assert job.status == "running" and job.id == f"wireflow:{job.native_id}"
    assert job.native_id.startswith("exec_") and job.metadata["idempotency_key"].startswith("imagegen-")
    seen = [client.status(job.id).status]
    while seen[-1] == "running":
        time.sleep(0.05)
        seen.append(client.status(job.id).status)
    done = client.status(job.id)
    assert seen[0] == "running" and done.status == "succeeded"
    assert done.result.images[0].url in done.result.metadata["output_urls"]
    assert done.result.cost.credits == 7 and done.result.cost.estimated is False  # reported by scripts


# -- webhook trigger mode -----------------------------------------------------------------------

def _saved_workflow(env: Any, *, webhook_id: str | None, active: bool = True) -> str:
    spec = WireflowProvider.models()[0]
    graph = build_graph(ImageRequest(prompt="placeholder"), spec, [])
    body = {**graph.workflow_body("hooked"), "webhookId": webhook_id, "isActive": active}
    response = httpx.post(f"{env.server.base_url}/api/v1/workflows", json=body,
                          headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 201
    return response.json().get("data", response.json())["id"]


@pytest.mark.parametrize("dialect", ["docs", "scripts"])
def test_webhook_mode_triggers_without_key_then_polls_with_it(make_env: Any, dialect: str) -> None:
    env = make_env(dialect=dialect, queued_s=0.05, initial_status="queued")
    _saved_workflow(env, webhook_id="whk_xyz789")
    client = env.client(webhook_id="whk_xyz789")
    result = client.generate("a cat wearing a top hat", provider="wireflow", aspect_ratio="16:9")
    assert (result.images[0].width, result.images[0].height) == (1365, 768)
    assert env.counters.get("webhook_triggers") == 1
    assert env.counters.get("webhook_triggers_with_authorization") == 0
    execution = next(iter(env.emulator.executions.values()))
    prompt_node = next(n for n in execution.nodes if n["id"] == "prompt")
    assert prompt_node["data"]["config"]["prompt"] == "a cat wearing a top hat"


def test_webhook_by_workflow_id_and_inactive_workflow(env: Any) -> None:
    workflow_id = _saved_workflow(env, webhook_id=None)
    assert env.client(webhook_id=workflow_id).generate("x", provider="wireflow").images
    inactive = _saved_workflow(env, webhook_id="whk_off", active=False)
    assert inactive
    with pytest.raises(InvalidRequestError, match="Workflow is not active"):
        env.client(webhook_id="whk_off").generate("x", provider="wireflow")


def test_webhook_get_check_cors_and_unknown_hook(env: Any) -> None:
    workflow_id = _saved_workflow(env, webhook_id="whk_check")
    url = f"{env.server.base_url}/api/v1/workflow/whk_check/trigger"
    check = httpx.get(url)
    assert check.status_code == 200 and check.headers["access-control-allow-origin"] == "*"
    assert check.json() == {"workflowId": workflow_id, "name": "hooked", "isActive": True,
                            "message": "Webhook is configured. Use POST to trigger execution."}
    assert httpx.options(url).status_code == 204
    posted = httpx.post(url, json={"prompt": "A cat wearing a top hat", "style": "photorealistic"})
    assert posted.status_code == 202 and posted.json()["status"] == "queued"
    assert posted.headers["x-request-id"].startswith("req_")
    assert httpx.get(f"{env.server.base_url}/workflow/whk_nope/trigger").status_code == 404


# -- another process finishes the job -------------------------------------------------------------

_SUBMIT = textwrap.dedent("""
    import sys
    from imagegen import Client
    client = Client(sys.argv[1])
    job = client.submit("a fox at dusk", provider="wireflow", aspect_ratio="4:3")
    print(job.id, job.status)
    # Exits now, while the execution is still RUNNING on the server.
""")
_WAIT = textwrap.dedent("""
    import sys
    from imagegen import Client
    client = Client(sys.argv[1])
    result = client.wait(sys.argv[2], timeout=30)
    print(len(result.images), result.images[0].width, result.images[0].height, result.images[0].url)
""")


def _config_file(tmp_path: Path, env: Any) -> Path:
    path = tmp_path / "imagegen.toml"
    path.write_text(textwrap.dedent(f"""
        [providers.wireflow]
        base_url = "{env.server.base_url}"
        api_key = "env:WIREFLOW_API_KEY"
        poll_schedule = {FAST_POLLS}
    """))
    return path


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "WIREFLOW_API_KEY": KEY}
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=environ, check=False, **kwargs)
    assert done.returncode == 0, done.stderr
    return done


def _finish_now(env: Any) -> None:
    """Bring every running execution's completion time to now (the emulator is in-process)."""
    for execution in env.emulator.executions.values():
        execution.completes_at = min(execution.completes_at, time.time())


def test_interrupted_client_is_finished_by_another_process(make_env: Any, tmp_path: Path) -> None:
    env = make_env(latency_s=60)
    config = _config_file(tmp_path, env)
    job_id, status = _run([sys.executable, "-c", _SUBMIT, str(config)]).stdout.split()
    assert status == "running" and env.counters.get("executions_completed") == 0
    _finish_now(env)
    count, width, height, url = _run([sys.executable, "-c", _WAIT, str(config), job_id]).stdout.split()
    assert (count, width, height) == ("1", "1182", "887") and url.startswith(env.server.base_url)
    assert env.counters.get("executions") == 1 and len(env.counters.charges) == 1
    assert env.counters.calls["POST /workflows/{wid}/execute"] == 1


def test_cli_status_and_wait_finish_an_interrupted_job(make_env: Any, tmp_path: Path) -> None:
    env = make_env(latency_s=60)
    config = _config_file(tmp_path, env)
    job_id, _ = _run([sys.executable, "-c", _SUBMIT, str(config)]).stdout.split()
    cli = [sys.executable, "-m", "imagegen"]
    running = json.loads(_run([*cli, "status", job_id, "--json", "--config", str(config)]).stdout)
    assert '"status": "running"' in json.dumps(running)
    _finish_now(env)
    out = tmp_path / "out"
    waited = json.loads(_run([*cli, "wait", job_id, "--json", "--config", str(config), "--out", str(out),
                              "--timeout", "30"]).stdout)
    assert waited["job_id"] == job_id and len(waited["images"]) == 1
    assert Path(waited["images"][0]["path"]).is_file() and waited["images"][0]["url"].startswith("http://127.")
    done = json.loads(_run([*cli, "status", job_id, "--json", "--config", str(config), "--out", str(out)]).stdout)
    assert "succeeded" in json.dumps(done)
    assert env.counters.get("executions") == 1 and len(env.counters.charges) == 1
