"""Fixtures for cache and cost tests: the provider emulators on loopback, fast."""

from __future__ import annotations

import pytest

from imagegen.testing import LatencyModel, serve


@pytest.fixture
def gemini():
    from imagegen_gemini.emulator import create_emulator

    with serve(create_emulator(latency=LatencyModel.none(), image_scale=0.05)) as server:
        yield server


@pytest.fixture
def nb2():
    from imagegen_nanobanana2.emulator import create_emulator

    with serve(create_emulator(latency=LatencyModel.none(), image_scale=0.05)) as server:
        yield server


@pytest.fixture
def wireflow():
    from imagegen_wireflow.emulator import create_emulator

    with serve(create_emulator(latency=LatencyModel.none())) as server:
        yield server


def provider(server, plugin: str, **settings) -> dict:
    table = {"plugin": plugin, "base_url": server.base_url, "api_key": "test-key", **settings}
    if plugin == "wireflow":
        table["poll_schedule"] = [0.01, 1.5, 0.05]
    return table
