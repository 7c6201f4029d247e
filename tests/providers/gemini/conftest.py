"""Fixtures for the gemini provider tests: one loopback emulator per module, clients on it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from PIL import Image as PILImage

from imagegen import AsyncClient, Client
from imagegen.testing import FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator

API_KEY = "test-key"


def config(base_url: str, **settings: Any) -> dict[str, Any]:
    """A code-only config with one ``gemini`` provider pointed at ``base_url``.

    The router's retries are off: these tests check what each answer is translated into
    (retries and fallback are tested in tests/routing).
    """
    provider = {"base_url": base_url, "api_key": API_KEY, **settings}
    return {"providers": {"gemini": provider}, "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
            "retry": {"max_attempts": 1}}


def png_bytes(width: int = 64, height: int = 48, colour: str = "red", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), colour).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def _shared() -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    emulator = create_emulator(latency=LatencyModel.none(), api_keys={API_KEY})
    with serve(emulator) as server:
        yield emulator, server


@pytest.fixture
def emulator(_shared: tuple[GeminiEmulator, LoopbackServer]) -> GeminiEmulator:
    emulator, _ = _shared
    emulator.counters.reset()
    emulator.faults = FaultPlan()
    return emulator


@pytest.fixture
def server(emulator: GeminiEmulator, _shared: tuple[GeminiEmulator, LoopbackServer]) -> LoopbackServer:
    return _shared[1]


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[Client]:
    with Client(config(server.base_url)) as c:
        yield c


@pytest.fixture
async def aclient(server: LoopbackServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(config(server.base_url)) as c:
        yield c
