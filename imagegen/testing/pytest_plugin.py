"""A pytest plugin with the ``emulator_server`` fixture.

Enable it in a conftest or test module::

    pytest_plugins = ["imagegen.testing.pytest_plugin"]

    def test_generate(emulator_server):
        server = emulator_server(MyEmulator())
        ...  # point a client at server.base_url
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.types import ASGIApp

from ._emulator import Emulator
from ._server import LoopbackServer, serve

__all__ = ["emulator_server"]


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
