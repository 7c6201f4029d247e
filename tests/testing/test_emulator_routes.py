"""The routes and bookkeeping every emulator gets from the kit, over real HTTP."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from imagegen.testing import Emulator, FaultPlan, LatencyModel, LoopbackServer, serve

from .echo import EchoEmulator


def test_calls_are_counted_per_route_template(echo: EchoEmulator, http: httpx.Client) -> None:
    http.post("/v1beta/models/gemini-a:generateContent", json={})
    http.post("/v1beta/models/gemini-b:generateContent", json={})
    url = http.post("/generate", json={}).json()["url"]
    http.get(url)
    http.get("/generate")  # 405: right path, wrong method
    http.get("/no/such/route")  # 404: counted under the raw path
    http.get("/_emulator/counters")  # control plane: not counted
    assert echo.counters.calls == {
        "POST /v1beta/models/{model}:generateContent": 2,
        "POST /generate": 1,
        "GET /files/{file_id}": 1,
        "GET /generate": 1,
        "GET /no/such/route": 1,
        "total": 6,
    }


def test_charges_are_recorded_by_handlers(echo: EchoEmulator, http: httpx.Client) -> None:
    http.post("/generate", json={"ref": "r1"})
    http.post("/v1beta/models/m:generateContent", json={})
    assert echo.counters.charges == [
        {"usd": 0.0, "credits": 1, "ref": "r1"},
        {"usd": 0.04, "credits": 0.0, "ref": "m"},
    ]
    assert echo.counters.total_usd == 0.04
    assert echo.counters.get("images") == 1


def test_counters_endpoint_and_reset(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.script("rate_limit")
    http.post("/generate", json={})
    http.post("/generate", json={})
    snapshot = http.get("/_emulator/counters").json()
    assert snapshot == echo.counters.snapshot()
    assert snapshot["calls"] == {"POST /generate": 2, "total": 2}
    assert snapshot["faults"] == {"rate_limit": 1}
    assert snapshot["total_credits"] == 1
    assert http.post("/_emulator/reset").json() == {"reset": True}
    assert http.get("/_emulator/counters").json()["calls"] == {}


def test_faults_can_be_replaced_over_http(echo: EchoEmulator, http: httpx.Client) -> None:
    response = http.put("/_emulator/faults", json={"spec": "script:ok,server_error:status=500"})
    assert response.status_code == 200 and response.json()["spec"].startswith("script:")
    assert [http.post("/generate", json={}).status_code for _ in range(3)] == [200, 500, 200]
    http.put("/_emulator/faults", json={"spec": "none"})
    assert http.post("/generate", json={}).status_code == 200


@pytest.mark.parametrize(
    "body", [b'{"spec": "explode=1"}', b'{"plan": "x"}', b"not json", b'{"spec": 3}', b"[]"]
)
def test_bad_fault_updates_are_400_and_keep_the_plan(
    echo: EchoEmulator, http: httpx.Client, body: bytes
) -> None:
    plan = echo.faults
    response = http.put("/_emulator/faults", content=body)
    assert response.status_code == 400
    assert "spec" in response.json()["error"]["message"]
    assert echo.faults is plan


def test_stored_files_are_served_with_type_and_length(
    echo: EchoEmulator, http: httpx.Client
) -> None:
    result = http.post("/generate", json={"width": 40, "height": 30}).json()
    assert result["url"].startswith(str(http.base_url).rstrip("/") + "/files/")
    response = http.get(result["url"])
    assert response.headers["content-type"] == "image/png"
    assert int(response.headers["content-length"]) == len(response.content)
    assert Image.open(io.BytesIO(response.content)).size == (40, 30)
    assert http.get("/files/unknown").status_code == 404


def test_old_files_are_forgotten_past_max_files() -> None:
    class Small(Emulator):
        max_files = 2

    emulator = Small()
    paths = [emulator.store_file(bytes([i]), "application/octet-stream") for i in range(3)]
    assert len(set(paths)) == 3
    with serve(emulator) as server, httpx.Client(base_url=server.base_url) as http:
        assert http.get(paths[0]).status_code == 404
        assert http.get(paths[2]).content == b"\x02"


def test_image_seeds_follow_the_emulator_seed_and_label() -> None:
    a, b = Emulator(seed=1), Emulator(seed=1)
    assert a.image(16, 16) == b.image(16, 16)
    assert a.image(16, 16) != a.image(16, 16)  # each call gets the next seed
    assert a.image(16, 16, label="x") == a.image(16, 16, label="x")
    assert Emulator(seed=2).image(16, 16, label="x") != a.image(16, 16, label="x")
    assert Image.open(io.BytesIO(a.image(20, 10, "jpeg"))).format == "JPEG"


def test_app_is_built_once_and_faults_are_read_per_request(echo: EchoEmulator) -> None:
    assert echo.app is echo.app
    echo.faults = FaultPlan.script("server_error")
    with serve(echo) as server:
        assert httpx.post(server.base_url + "/generate", json={}).status_code == 503


def test_latency_model_slows_the_handler_by_the_scaled_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMAGEGEN_EMULATOR_TIME_SCALE", "0.002")
    emulator = EchoEmulator(latency=LatencyModel(base=10.0, per_megapixel=100.0))
    with serve(emulator) as server:
        response = httpx.post(server.base_url + "/generate", json={"width": 1000, "height": 1000})
    # (10 s + 100 s/MP * 1 MP) * 0.002 = 0.22 s; only a lower bound is reliable on busy machines.
    assert response.elapsed.total_seconds() >= 0.2


def test_keep_alive_requests_are_not_slowed_by_delayed_acks(echo_server: LoopbackServer) -> None:
    # Without TCP_NODELAY each of these takes ~40 ms; with it, about 1 ms.
    with httpx.Client(base_url=echo_server.base_url) as http:
        elapsed = sum(
            http.get("/_emulator/counters").elapsed.total_seconds() for _ in range(50)
        )
    assert elapsed < 1.5
