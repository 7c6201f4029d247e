"""Fixtures: the nano-banana2 emulator over real loopback HTTP, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imagegen import AsyncClient, Client
from imagegen.testing import LatencyModel, LoopbackServer, serve, synth_image
from imagegen_nanobanana2.emulator import NanoBanana2Emulator, create_emulator

API_KEY = "nb2_test_key"
#: Poll settings that keep the suite fast; behaviour is the same as the defaults.
FAST = {"poll_interval": 0.01}
#: The router's retry policy, with short backoffs (3 tries, as the vendor's guide asks).
FAST_RETRY = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}


def provider_table(server: LoopbackServer, **settings: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "api_key": API_KEY, **FAST, **settings}


def config(server: LoopbackServer, *, max_retries: int = 2, **settings: Any) -> dict[str, Any]:
    return {"providers": {"nanobanana2": provider_table(server, **settings)}, "jobs": {"backend": "memory"},
            "retry": {**FAST_RETRY, "max_attempts": max_retries + 1}, "cache": {"backend": "off"}}


def make_emulator(**options: Any) -> NanoBanana2Emulator:
    options.setdefault("latency", LatencyModel.none())
    options.setdefault("image_scale", 0.05)
    return create_emulator(**options)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[NanoBanana2Emulator, LoopbackServer]]]:
    """``start(**emulator_options)`` -> (emulator, server); every server is stopped afterwards."""
    servers: list[LoopbackServer] = []

    def _start(**options: Any) -> tuple[NanoBanana2Emulator, LoopbackServer]:
        emulator = make_emulator(**options)
        server = serve(emulator).start()
        servers.append(server)
        return emulator, server

    yield _start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def emulator_and_server(start, mode):  # type: ignore[no-untyped-def]
    return start(mode=mode)


@pytest.fixture
def client(emulator_and_server) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    _, server = emulator_and_server
    with Client(config(server)) as c:
        yield c


@pytest.fixture
async def aclient(emulator_and_server):  # type: ignore[no-untyped-def]
    _, server = emulator_and_server
    async with AsyncClient(config(server)) as c:
        yield c


@pytest.fixture
def emulator(emulator_and_server) -> NanoBanana2Emulator:  # type: ignore[no-untyped-def]
    return emulator_and_server[0]


@pytest.fixture(scope="session")
def png() -> bytes:
    return synth_image(64, 48, "png", seed=1)


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return synth_image(40, 40, "jpeg", seed=2)
