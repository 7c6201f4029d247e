"""Fixtures for the Wireflow provider tests: an emulator per test over real loopback HTTP,
and clients pointed at it with fast poll schedules."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from imagegen import AsyncClient, Client
from imagegen.testing import FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_wireflow.emulator import WireflowEmulator, create_emulator

FAST_POLLS = [0.01, 1.5, 0.05]
KEY = "sk-test-key"


def settings(server: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return {"base_url": server.base_url, "api_key": KEY, "poll_schedule": FAST_POLLS,
            "executions_per_minute": 1000, **extra}


def config(server: LoopbackServer, *, max_retries: int = 3, **extra: Any) -> dict[str, Any]:
    """Retries are the core's (``[retry]``), fast here; ``max_retries=0`` tries once."""
    return {"providers": {"wireflow": settings(server, **extra)}, "jobs": {"backend": "memory"},
            "retry": {"max_attempts": max_retries + 1, "initial_backoff_s": 0.01, "max_backoff_s": 0.05},
            "cache": {"backend": "off"}}


class Env:
    """One emulator, its server, and helpers to build clients on it."""

    def __init__(self, emulator: WireflowEmulator, server: LoopbackServer) -> None:
        self.emulator, self.server = emulator, server
        self._clients: list[Client] = []

    def client(self, **extra: Any) -> Client:
        client = Client(config(self.server, **extra))
        self._clients.append(client)
        return client

    def async_client(self, **extra: Any) -> AsyncClient:
        return AsyncClient(config(self.server, **extra))

    @property
    def counters(self) -> Any:
        return self.emulator.counters

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def make_env() -> Iterator[Callable[..., Env]]:
    """``make_env(faults=..., latency_s=0.1, **emulator_options)`` -> a started Env."""
    envs: list[tuple[Env, LoopbackServer]] = []

    def start(*, faults: FaultPlan | None = None, latency_s: float = 0.05, **options: Any) -> Env:
        emulator = create_emulator(faults=faults, latency=LatencyModel(base=latency_s, scale=1.0), **options)
        server = serve(emulator).start()
        env = Env(emulator, server)
        envs.append((env, server))
        return env

    yield start
    for env, server in reversed(envs):
        env.close()
        server.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()
