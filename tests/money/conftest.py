"""Fixtures for the money tests: provider emulators served in-process over loopback, fast."""

from __future__ import annotations

from typing import Any

import pytest

from imagegen.testing import LatencyModel

PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "nb2async": "nanobanana2", "wireflow": "wireflow",
           "openai": "openai"}
FAST_RETRY = {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}


def make_emulator(name: str, *, latency: float = 0.0, **options: Any) -> Any:
    """A fresh emulator for ``name`` (``nb2async`` is nano-banana2 answering with polled jobs)."""
    model = LatencyModel(base=latency) if latency else LatencyModel.none()
    if name == "gemini":
        from imagegen_gemini.emulator import create_emulator

        return create_emulator(latency=model, image_scale=0.02, **options)
    if name in ("nb2", "nb2async"):
        from imagegen_nanobanana2.emulator import create_emulator

        mode = "async" if name == "nb2async" else "sync"
        return create_emulator(latency=model, image_scale=0.02, mode=mode, ticks=1, **options)
    if name == "openai":
        from imagegen_openai.emulator import create_emulator

        return create_emulator(latency=model, image_scale=0.02, **options)
    from imagegen_wireflow.emulator import create_emulator

    return create_emulator(latency=model, output_max_side=32, executions_per_minute=1e9,
                           requests_per_minute=1e9, **options)


def provider_table(name: str, base_url: str) -> dict[str, Any]:
    table: dict[str, Any] = {"plugin": PLUGINS[name], "base_url": base_url, "api_key": "test-key"}
    if name.startswith("nb2"):
        table["poll_interval"] = 0.01
    if name == "wireflow":
        table.update(poll_schedule=[0.01, 1.5, 0.05], executions_per_minute=1e9, requests_per_minute=1e9,
                     persist_workflows=False)
    return table


def config_for(servers: dict[str, Any], tmp_path: Any, **sections: Any) -> dict[str, Any]:
    """A client config over ``servers`` (name -> LoopbackServer) with SQLite stores in ``tmp_path``."""
    config: dict[str, Any] = {
        "providers": {name: provider_table(name, server.base_url) for name, server in servers.items()},
        "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")},
        "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")},
        "cache": {"backend": "off"},
        "retry": FAST_RETRY,
    }
    config.update(sections)
    return config


@pytest.fixture
def emulator_factory():
    return make_emulator
