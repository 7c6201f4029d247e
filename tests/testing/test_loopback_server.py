from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from imagegen.testing import Emulator, Fault, FaultPlan, LoopbackServer, serve

from .echo import EchoEmulator


def _refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_serves_on_a_free_loopback_port_and_frees_it() -> None:
    emulator = EchoEmulator()
    with serve(emulator) as server:
        assert server.emulator is emulator
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert httpx.post(server.base_url + "/generate", json={}).status_code == 200
    assert _refuses(server.port)


async def test_async_with() -> None:
    async with serve(EchoEmulator()) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            assert (await http.post("/generate", json={})).status_code == 200
    assert _refuses(server.port)


def test_port_is_unknown_before_start_and_start_is_once() -> None:
    server = serve(Emulator())
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.base_url
    with server:
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    server.stop()  # a second stop is harmless


def test_a_fixed_port_can_be_reused_after_stop() -> None:
    with serve(Emulator()) as first:
        port = first.port
    with serve(Emulator(), port=port) as second:
        assert httpx.get(second.base_url + "/_emulator/counters").status_code == 200


def test_a_busy_port_is_an_error() -> None:
    with serve(Emulator()) as first:
        with pytest.raises(OSError):
            serve(Emulator(), port=first.port).start()


def test_several_servers_run_at_once_with_their_own_state() -> None:
    emulators = [EchoEmulator(seed=i) for i in range(5)]
    servers = [serve(e).start() for e in emulators]
    try:
        assert len({s.port for s in servers}) == 5

        def hit(server: LoopbackServer) -> str:
            with httpx.Client(base_url=server.base_url) as http:
                for _ in range(3):
                    http.post("/generate", json={})
                return http.get(http.post("/generate", json={}).json()["url"]).content

        with ThreadPoolExecutor(5) as pool:
            images = list(pool.map(hit, servers))
        assert len(set(images)) == 5  # different seeds, different images
        assert [e.counters.calls["POST /generate"] for e in emulators] == [4] * 5
    finally:
        for server in servers:
            server.stop()


def test_serves_a_plain_asgi_app() -> None:
    app = Starlette(routes=[Route("/", lambda request: PlainTextResponse("hi"))])
    with serve(app) as server:
        assert server.emulator is None
        assert httpx.get(server.base_url + "/").text == "hi"


def test_stopping_with_a_request_in_flight_is_prompt() -> None:
    emulator = EchoEmulator(faults=FaultPlan.script(Fault("timeout", delay=60)))
    server = serve(emulator).start()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, server.base_url + "/generate", json={}, timeout=30)
        time.sleep(0.2)
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 5
        # uvicorn cancels the stalled request and answers 500 (or the socket closes).
        try:
            assert pending.result(timeout=5).status_code == 500
        except httpx.TransportError:
            pass


def test_run_forever_serves_until_terminated() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from imagegen.testing import Emulator, run_forever; "
        f"run_forever(Emulator(), port={port}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/_emulator/counters")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)
        assert response.json()["calls"] == {}
    finally:
        process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(10) in (0, -signal.SIGTERM)
