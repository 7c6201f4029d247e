from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from imagegen.testing import FaultPlan, LoopbackServer, serve

from .echo import EchoEmulator


@pytest.fixture(scope="module")
def _shared_echo() -> Iterator[tuple[EchoEmulator, LoopbackServer]]:
    # One server per module keeps the suite fast; `echo` resets its state for each test.
    emulator = EchoEmulator()
    with serve(emulator) as server:
        yield emulator, server


@pytest.fixture
def echo(_shared_echo: tuple[EchoEmulator, LoopbackServer]) -> EchoEmulator:
    emulator, _ = _shared_echo
    emulator.counters.reset()
    emulator.faults = FaultPlan()
    return emulator


@pytest.fixture
def echo_server(
    echo: EchoEmulator, _shared_echo: tuple[EchoEmulator, LoopbackServer]
) -> LoopbackServer:
    return _shared_echo[1]


@pytest.fixture
def http(echo_server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=echo_server.base_url, timeout=10) as client:
        yield client
