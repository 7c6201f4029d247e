"""A pytest plugin with the ``emulator_server`` and ``imagegen_client`` fixtures.

Enable it in a conftest or test module::

    pytest_plugins = ["imagegen.testing.pytest_plugin"]

    def test_generate(emulator_server, imagegen_client):
        server = emulator_server(MyEmulator())
        client = imagegen_client({"mine": server})  # stores in memory: nothing on disk
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.types import ASGIApp

from ._emulator import Emulator
from ._isolated import isolated_client
from ._server import LoopbackServer, serve

__all__ = ["emulator_server", "imagegen_client"]


@pytest.fixture
def emulator_server() -> Iterator[Callable[..., LoopbackServer]]:
    """A factory: ``emulator_server(emulator, host=..., port=...)`` returns a started
    `LoopbackServer`; every server it started is stopped when the test ends."""
    servers: list[LoopbackServer] = []

    def start(
        target: Emulator | ASGIApp, *, host: str = "127.0.0.1", port: int = 0
    ) -> LoopbackServer:
        server = serve(target, host=host, port=port).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def imagegen_client() -> Iterator[Callable[..., Any]]:
    """A factory: ``imagegen_client({"gemini": server}, **config)`` returns a ``Client`` on those
    emulators whose job store, ledger and cache are in memory (see ``isolated_client``); every
    client it made is closed when the test ends."""
    clients: list[Any] = []

    def make(providers: Any, **config: Any) -> Any:
        client = isolated_client(providers, **config)
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.close()
