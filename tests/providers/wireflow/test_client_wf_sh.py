"""Every verb of Wireflow's published client script, replayed against the emulator in both
dialects (see ``_wf_script``). Executions run on a fake clock: ``wait``'s 6-second sleeps
move the clock instead of the test."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagegen.testing import FakeClock, LatencyModel, serve
from imagegen_wireflow.emulator import WireflowEmulator, create_emulator

from ._wf_script import WfScript

KEY = "wf_live_offline_key"


def _node(node_id: str, node_type: str, label: str, config: dict[str, Any], x: int) -> dict[str, Any]:
    return {"id": node_id, "type": "basedNode", "position": {"x": x, "y": 200},
            "data": {"label": label, "nodeType": node_type, "category": node_type.split(":")[0], "config": config}}


def _edge(edge_id: str, source: str, target: str, out: str, into: str) -> dict[str, Any]:
    return {"id": edge_id, "source": source, "target": target, "sourceHandle": out, "targetHandle": into}


#: The spec's smallest graph (text -> Nano Banana 2, §12.7), with a Pro refinement after it.
GRAPH = {
    "name": "Text to Image — nano_banana_2", "description": "Text Input -> generator -> refinement",
    "tags": ["skill-example"], "isActive": True,
    "nodes": [_node("text-input-1", "input:text", "Prompt", {"prompt": "a cow in a neon field"}, 100),
              _node("nano-banana-1", "generate:nano_banana_2", "Nano Banana 2",
                    {"num_images": 1, "aspect_ratio": "9:16"}, 500),
              _node("refine-1", "generate:nano_banana_pro", "Refine", {"resolution": "1K"}, 900)],
    "edges": [_edge("edge-1", "text-input-1", "nano-banana-1", "out-prompt", "in-prompt"),
              _edge("edge-2", "text-input-1", "refine-1", "out-prompt", "in-prompt"),
              _edge("edge-3", "nano-banana-1", "refine-1", "out-images", "in-image1")],
}


class Env:
    def __init__(self, emulator: WireflowEmulator, clock: FakeClock, script: WfScript, base: str) -> None:
        self.emulator, self.clock, self.script, self.base = emulator, clock, script, base

    def create(self) -> str:
        outcome = self.script.create(copy.deepcopy(GRAPH))
        assert outcome.status == 0
        return str(outcome.body.get("data", outcome.body)["id"])

    def run_to_end(self, workflow_id: str) -> list[str]:
        started = self.script.run(workflow_id, {"inputs": {"text-input-1": "a cow standing in a field"}})
        waited = self.script.wait(started.body["data"]["executionId"])
        assert waited.status == 0, waited.err
        return waited.out


@pytest.fixture(params=["docs", "scripts"])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    clock = FakeClock()
    emulator = create_emulator(dialect=request.param, clock=clock, image_scale=0.02,
                               latency=LatencyModel(base=8.0, scale=1.0), executions_per_minute=1e6)
    with serve(emulator) as server:
        script = WfScript(server.base_url + "/api/v1", KEY, sleep=clock.advance)
        try:
            yield Env(emulator, clock, script, server.base_url)
        finally:
            script.close()


def test_check_create_list_get_and_inputs(env: Env) -> None:
    script = env.script
    assert script.check(copy.deepcopy(GRAPH)).status == 0
    broken = copy.deepcopy(GRAPH)
    broken["edges"][0]["targetHandle"] = "in-nothing"
    rejected = script.check(broken)
    assert rejected.status == 1 and rejected.err[0].startswith("✗ bad-target-handle")
    assert script.create(broken).status == 1  # the gate blocks the POST
    workflow_id = env.create()
    assert workflow_id in script.list().out[0]
    got = script.get(workflow_id).body
    assert [n["id"] for n in got["nodes"]] == ["text-input-1", "nano-banana-1", "refine-1"]  # top level
    assert all(n["data"]["output"] is None for n in got["nodes"])  # null until a run writes them
    inputs = script.inputs(workflow_id).body["data"]["inputs"]
    assert [i["nodeId"] for i in inputs] == ["text-input-1"]


def test_run_then_wait_prints_the_outputs(env: Env) -> None:
    workflow_id = env.create()
    before = env.clock.time()
    out = env.run_to_end(workflow_id)
    assert out[0].startswith("[RUNNING]") and "✓ COMPLETED" in out
    urls = [line.split(": ", 1)[1] for line in out if line.startswith("  → ")]
    assert len(urls) == 2 and all(httpx.get(url).status_code == 200 for url in urls)
    assert any(line.startswith("  ✎ Prompt: a cow standing in a field") for line in out)
    assert env.clock.time() - before >= 8.0  # the execution took its 8 s on the fake clock
    assert env.emulator.counters.total_credits == 27  # Nano Banana 2 (7) + Pro (20)


def test_poll_once_has_top_level_status_and_node_states(env: Env) -> None:
    workflow_id = env.create()
    started = env.script.run(workflow_id, {"inputs": {}})
    body = env.script.poll(started.body["data"]["executionId"]).body
    assert body["status"] == "RUNNING" and {s["nodeId"] for s in body["nodeStates"]} == {
        "text-input-1", "nano-banana-1", "refine-1"}


def test_wait_reports_a_failed_node(env: Env) -> None:
    graph = copy.deepcopy(GRAPH)
    graph["nodes"][0]["data"]["config"]["prompt"] = "[[fail]] a cow"
    workflow_id = str((lambda b: b.get("data", b))(env.script.create(graph).body)["id"])
    started = env.script.run(workflow_id, {})
    failed = env.script.wait(started.body["data"]["executionId"])
    assert failed.status == 1 and failed.err[0] == "✗ FAILED"
    assert any("Nano Banana 2: FAL request failed" in line for line in failed.err)


def test_run_node_reuses_cached_upstream_and_warns_when_it_is_stale(env: Env) -> None:
    workflow_id = env.create()
    env.run_to_end(workflow_id)
    saved = env.script.get(workflow_id).body
    assert saved["nodes"][1]["data"]["output"]["url"].startswith("http")  # the run wrote its output
    patched = env.script.patch_node(workflow_id, "nano-banana-1", {"config": {"aspect_ratio": "16:9"}})
    assert patched.status == 0 and patched.out[0] == "patched node: nano-banana-1"
    charged = env.emulator.counters.total_credits
    started = env.script.run_node(workflow_id, "refine-1")
    assert started.status == 0
    assert started.err == ["STALE upstream: paid node 'nano-banana-1' (aspect_ratio)"]
    run_id = started.body.get("executionId") or started.body["executionRuns"][0]["id"]
    assert env.script.wait(run_id).status == 0
    assert env.emulator.counters.total_credits - charged == 20  # only the target ran
    assert env.emulator.executions[run_id].runs == {"refine-1"}


def test_run_node_runs_upstream_without_a_cache_and_run_force_rerolls_everything(env: Env) -> None:
    workflow_id = env.create()
    started = env.script.run_node(workflow_id, "refine-1")  # nothing cached yet
    run_id = started.body.get("executionId") or started.body["executionRuns"][0]["id"]
    assert env.emulator.executions[run_id].runs == {"text-input-1", "nano-banana-1", "refine-1"}
    assert env.script.wait(run_id).status == 0
    forced = env.script.run_force(workflow_id)
    assert forced.status == 0
    forced_id = forced.body.get("executionId") or forced.body["executionRuns"][0]["id"]
    assert env.script.wait(forced_id).status == 0
    assert env.emulator.counters.total_credits == 2 * 27


def test_update_patch_conflict_organize(env: Env) -> None:
    workflow_id = env.create()
    renamed = dict(copy.deepcopy(GRAPH), name="Renamed")
    assert env.script.update(workflow_id, renamed).status == 0
    assert env.script.get(workflow_id).body["name"] == "Renamed"
    stale = env.script.patch_node(workflow_id, "text-input-1",
                                  {"config": {"prompt": "x"}, "baseUpdatedAt": "2020-01-01T00:00:00.000Z"})
    assert stale.status == 1 and stale.err[0] == "✗ CONFLICT (409)"
    refused = env.script.patch_node(workflow_id, "text-input-1", {"output": "x"})
    assert refused.status == 1 and refused.body["error"]  # 400 invalid_field
    patched = env.script.patch_node(workflow_id, "text-input-1", {"config": {"prompt": "new text"}, "label": "Hook"})
    assert patched.out[:2] == ["patched node: text-input-1", "label:        Hook"]
    node = env.script.get(workflow_id).body["nodes"][0]["data"]
    assert node["config"]["prompt"] == node["params"]["prompt"] == "new text"  # config mirrored into params
    assert env.script.organize(workflow_id).status == 0


def test_duplicate_publish_unpublish_delete(env: Env) -> None:
    workflow_id = env.create()
    copied = env.script.duplicate(workflow_id, "My copy")
    assert copied.status == 0 and copied.out[0].startswith("id:  cm") and copied.out[1].startswith("url: http")
    assert env.script.duplicate(workflow_id).status == 0
    published = env.script.publish(workflow_id)
    assert published.out[0] == "linkPermission: view" and published.out[1].endswith(f"/workflows/{workflow_id}")
    assert env.script.get(workflow_id).body["isPublished"] is True
    assert env.script.unpublish(workflow_id).out == ["linkPermission: private"]
    assert env.script.publish("cm-missing").status == 1
    env.script.delete(workflow_id)
    assert env.script.http.get(f"{env.script.base}/workflows/{workflow_id}", headers=env.script.auth).status_code == 404


def test_upload_media_and_download(env: Env) -> None:
    from_file = env.script.upload(("shot.png", b"\x89PNG fake bytes", "image/png"))
    assert from_file.status == 0
    rehosted = env.script.upload(from_file.out[0])
    assert rehosted.status == 0 and rehosted.out[0] != from_file.out[0]
    listed = env.script.media().body["data"]
    assert [item["url"] for item in listed] == [rehosted.out[0], from_file.out[0]]
    direct = env.script.download(rehosted.out[0])
    assert direct.status == 0 and direct.body == b"\x89PNG fake bytes"
    on_cdn = rehosted.out[0].replace(env.base, "https://cdn.wireflow.ai")  # goes through the proxy
    proxied = env.script.download(on_cdn)
    assert proxied.status == 0 and proxied.body == b"\x89PNG fake bytes"
    assert env.emulator.counters.get("proxied_downloads") == 1
    assert env.script.download("https://cdn.wireflow.ai/uploads/unknown.png").status == 22
    assert env.script.upload("https://unreachable.example/x.png").status == 1


def test_catalogue_verbs_preview_generate_and_credits(env: Env) -> None:
    assert {t["id"] for t in env.script.templates().body["data"]} >= {"hook-reel"}
    assert env.script.template("hook-reel").body["data"]["fps"] == 30
    catalogue = env.script.nodes().body["nodes"]
    generator = next(n for n in catalogue if n["nodeType"] == "generate:nano_banana_2")
    assert {"prompt": True, "aspect_ratio": False} == {i["id"]: i["isPort"] for i in generator["inputs"]
                                                       if i["id"] in ("prompt", "aspect_ratio")}
    assert [b["blockId"] for b in env.script.blocks(use="endcard").body["blocks"]] == ["endcard-logo"]
    assert all(b["renderable"] for b in env.script.blocks(renderable=True).body["blocks"])
    assert env.script.block("captions-karaoke").body["blocks"][0]["displayName"] == "Karaoke captions"
    frames = env.script.preview({"fps": 30, "width": 1080, "height": 1920,
                                 "scenes": [{"type": "image", "durationInFrames": 90}]}).body["frames"]
    assert [f["frame"] for f in frames] == [18, 49, 76] and httpx.get(frames[0]["url"]).status_code == 200
    events = env.script.generate("a poster of a lighthouse").body
    assert events[-1]["done"] is True and events[-1]["workflow"]["id"] in env.emulator.workflows
    assert env.script.credits().body  # balance for the key


def test_the_old_host_redirects_with_method_and_body(env: Env) -> None:
    legacy = WfScript(env.base + "/legacy/api/v1", KEY)
    try:
        created = legacy.create(copy.deepcopy(GRAPH))  # POSTs through a 308
        assert created.status == 0 and len(env.emulator.workflows) == 1
    finally:
        legacy.close()


def test_unknown_routes_answer_the_dialects_json_error(env: Env) -> None:
    response = env.script.http.get(f"{env.script.base}/no/such/thing", headers=env.script.auth)
    assert response.status_code == 404 and response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert "Not found" in (error if isinstance(error, str) else error["message"])
