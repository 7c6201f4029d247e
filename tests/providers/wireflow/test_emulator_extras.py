"""Wireflow emulator routes beyond the published client script: the presigned upload flow (G13),
feedback (G2) and layout (G2, G10)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from imagegen.testing import FakeClock, LatencyModel, serve
from imagegen_wireflow.emulator import create_emulator

AUTH = {"Authorization": "Bearer wf_live_key"}


@pytest.fixture
def http() -> Iterator[tuple[httpx.Client, FakeClock]]:
    clock = FakeClock()
    emulator = create_emulator(dialect="scripts", clock=clock, latency=LatencyModel.none())
    with serve(emulator) as server, httpx.Client(base_url=server.base_url + "/api/v1", headers=AUTH) as client:
        yield client, clock


def test_presigned_upload_for_a_large_file(http: tuple[httpx.Client, FakeClock]) -> None:
    client, _ = http
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(5000)
    started = client.post("/media/upload-url", json={"filename": "big.mp4", "contentType": "video/mp4",
                                                     "size": len(video)}).json()["data"]
    assert started["method"] == "PUT" and started["headers"] == {"Content-Type": "video/mp4",
                                                                 "Content-Length": str(len(video))}
    early = client.post("/media/upload-url/complete", json={"mediaId": started["mediaId"]})
    assert early.status_code == 409
    wrong = httpx.put(started["uploadUrl"], content=video, headers={"Content-Type": "image/png"})
    assert wrong.status_code == 403 and b"SignatureDoesNotMatch" in wrong.content
    assert httpx.put(started["uploadUrl"], content=video, headers=started["headers"]).status_code == 200
    done = client.post("/media/upload-url/complete", json={"mediaId": started["mediaId"]}).json()["data"]
    assert httpx.get(done["url"]).content == video
    assert [item["url"] for item in client.get("/media").json()["data"]] == [done["url"]]
    assert client.post("/media/upload-url/complete", json={"mediaId": started["mediaId"]}).status_code == 404


def test_feedback_and_its_burst_limit(http: tuple[httpx.Client, FakeClock]) -> None:
    client, clock = http
    note = {"title": "Lint message", "body": "The fix hint names the wrong port", "category": "bug"}
    answers = [client.post("/feedback", json=note) for _ in range(6)]
    assert [a.status_code for a in answers] == [201] * 5 + [429]
    assert answers[0].json()["id"].startswith("fb_")
    assert answers[-1].json()["error"]["code"] == "feedback_burst_limited"
    clock.advance(61)
    assert client.post("/feedback", json=note).status_code == 201
    refused = client.get("/feedback")
    assert refused.status_code == 405 and refused.json()["error"]["message"].startswith("Method GET not allowed")


def test_layout_places_nodes_in_columns_by_depth(http: tuple[httpx.Client, FakeClock]) -> None:
    client, _ = http
    node = lambda i, t: {"id": i, "type": "basedNode", "position": {"x": 0, "y": 0},  # noqa: E731
                         "data": {"nodeType": t, "config": {}}}
    graph = {"name": "g", "nodes": [node("p", "input:text"), node("a", "generate:nano_banana_2"),
                                    node("b", "generate:nano_banana_pro")],
             "edges": [{"id": "e1", "source": "p", "target": "a", "sourceHandle": "out-prompt",
                        "targetHandle": "in-prompt"},
                       {"id": "e2", "source": "a", "target": "b", "sourceHandle": "out-images",
                        "targetHandle": "in-image1"}]}
    workflow_id = client.post("/workflows", json=graph).json()["data"]["id"]
    laid = client.post(f"/workflows/{workflow_id}/layout", json={"gapX": 500, "gapY": 200}).json()
    assert laid["positions"] == {"p": {"x": 0, "y": 0}, "a": {"x": 500, "y": 0}, "b": {"x": 1000, "y": 0}}
    assert laid["moved"] == ["a", "b"] and laid["bounds"]["width"] == 1000
    saved = client.get(f"/workflows/{workflow_id}").json()
    assert [n["position"]["x"] for n in saved["nodes"]] == [0, 500, 1000]
