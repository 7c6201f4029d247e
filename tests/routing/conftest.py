"""Fixtures for routing tests: the real provider emulators on loopback, and a real redis-server."""

from __future__ import annotations

import socket

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
