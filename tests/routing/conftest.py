"""Fixtures for routing tests: the real provider emulators on loopback, and a real redis-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from imagegen.testing import LatencyModel, serve


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gemini_emulator():
    from imagegen_gemini.emulator import create_emulator

    emulator = create_emulator(latency=LatencyModel.none())
    with serve(emulator) as server:
        yield server


@pytest.fixture
def nb2_emulator():
    from imagegen_nanobanana2.emulator import create_emulator

    emulator = create_emulator(latency=LatencyModel.none())
    with serve(emulator) as server:
        yield server


def providers_config(**servers) -> dict:
    """Config entries pointing each provider instance at its emulator."""
    plugin_of = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow"}
    return {name: {"plugin": plugin_of[name], "base_url": srv.base_url, "api_key": "test-key"}
            for name, srv in servers.items()}


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port (scripts/test installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `bash scripts/test`, which installs it")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)
