"""The in-process path: httpx.AsyncClient over asgi_transport, no sockets."""

from __future__ import annotations

import json

import httpx
import pytest

from imagegen.testing import Fault, FaultPlan, asgi_transport

from .echo import EchoEmulator


def _client(emulator: EchoEmulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=asgi_transport(emulator), base_url="http://echo.test")


async def test_generate_and_download_in_process() -> None:
    emulator = EchoEmulator()
    async with _client(emulator) as http:
        result = (await http.post("/generate", json={"width": 8, "height": 8})).json()
        assert result["url"].startswith("http://echo.test/files/")
        image = await http.get(result["url"])
    assert image.headers["content-type"] == "image/png"
    assert emulator.counters.calls == {"POST /generate": 1, "GET /files/{file_id}": 1, "total": 2}


async def test_drop_raises_the_same_transport_error_in_process() -> None:
    emulator = EchoEmulator(faults=FaultPlan.script("drop"))
    async with _client(emulator) as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.post("/generate", json={})
        assert caught.value.request.url.path == "/generate"
        assert (await http.post("/generate", json={})).status_code == 200
    assert emulator.counters.total_credits == 2  # the dropped answer was made, so billed


async def test_drop_reaches_the_client_after_its_status_line_in_process() -> None:
    emulator = EchoEmulator(faults=FaultPlan.script("drop"))
    async with _client(emulator) as http, http.stream("POST", "/generate", json={}) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await response.aread()


async def test_other_faults_in_process() -> None:
    plan = FaultPlan.script(
        Fault("rate_limit", retry_after=1),
        "truncate",
        Fault("timeout", delay=0.05),
        "malformed",
        "html",
    )
    emulator = EchoEmulator(faults=plan)
    async with _client(emulator) as http:
        responses = [await http.post("/generate", json={}) for _ in range(5)]
    assert [r.status_code for r in responses] == [429, 200, 504, 200, 502]
    assert responses[0].headers["retry-after"] == "1"
    with pytest.raises(json.JSONDecodeError):
        responses[1].json()
    assert responses[3].json() == {"unexpected": "shape"}
    assert emulator.counters.total_credits == 2  # truncate and malformed answered (and billed) first
