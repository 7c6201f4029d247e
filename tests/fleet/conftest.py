"""Fleet test scaffolding: emulators served from this process (their books outlive any worker),
workers and submitters as real subprocesses running the ``imagegen`` CLI, a real Redis.

Time is scaled so CI stays fast: ``SCALE = 0.1`` makes the emulators' 200 ms latency 20 ms
and a provider's 60 s rate window 6 s (``[fleet] rate_window_s``), so "120 requests per
minute" becomes 120 per 6 s and every duration measured maps to the real figure times 10.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCALE = 0.1
PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_emulator(name: str, latency_s: float, **options: Any) -> Any:
    from imagegen.testing import LatencyModel

    model = LatencyModel(base=latency_s)
    if name == "gemini":
        from imagegen_gemini.emulator import create_emulator

        return create_emulator(latency=model, image_scale=0.02, **options)
    if name == "nb2":
        from imagegen_nanobanana2.emulator import create_emulator as create_nb2

        return create_nb2(latency=model, mode="async", ticks=None, image_scale=0.02, **options)
    from imagegen_wireflow.emulator import create_emulator as create_wireflow

    return create_wireflow(latency=model, output_max_side=32, executions_per_minute=1e6, **options)


def write_config(tmp: Path, servers: dict[str, str], *, fleet: dict[str, Any] | None = None,
                 provider_extra: dict[str, str] | None = None) -> Path:
    """An imagegen.toml pointing each provider at its emulator; the fleet section as given."""
    extra = {"gemini": "", "nb2": "poll_interval = 0.05\n",
             "wireflow": "poll_schedule = [0.05, 1.5, 0.2]\nexecutions_per_minute = 1e6\npersist_workflows = false\n"}
    text = f'default = "{next(iter(servers))}"\n'
    for name, base_url in servers.items():
        text += textwrap.dedent(f"""\
            [providers.{name}]
            plugin = "{PLUGINS[name]}"
            base_url = "{base_url}"
            api_key = "env:FLEET_TEST_KEY"
            """) + extra[name] + (provider_extra or {}).get(name, "")
    text += '[cache]\nbackend = "off"\n[fleet]\n'
    for key, value in (fleet or {}).items():
        text += f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}\n"
    path = tmp / "imagegen.toml"
    path.write_text(text)
    return path


def _inline(table: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + "}"


def cli_env(tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "FLEET_TEST_KEY": "fleet-key", "IMAGEGEN_DATA_DIR": str(tmp / "data"), **extra}


def imagegen(*args: str, env: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    """Run one CLI command to completion; its one JSON object."""
    done = subprocess.run([sys.executable, "-m", "imagegen", *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.stdout, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def submit_in_process(config: Path, url: str, requests: list[Any], out: str) -> str:
    """Enqueue a batch through the Python API (no interpreter to start); its id."""
    import asyncio

    from imagegen import AsyncClient

    async def submit() -> str:
        async with AsyncClient(config) as client:
            fleet = client.fleet(url)
            try:
                return await fleet.submit(requests, out=out)
            finally:
                await fleet.aclose()

    return asyncio.run(submit())


def status_in_process(config: Path, url: str, batch_id: str) -> dict[str, Any]:
    """A batch's status through the Python API (what ``batch status --json`` prints)."""
    import asyncio

    from imagegen import AsyncClient

    async def status() -> dict[str, Any]:
        async with AsyncClient(config) as client:
            fleet = client.fleet(url)
            try:
                return (await fleet.status(batch_id)).model_dump(mode="json")
            finally:
                await fleet.aclose()

    return asyncio.run(status())


def start_worker(config: Path, url: str, name: str, env: dict[str, str], *, concurrency: int = 4,
                 exit_when_idle: bool = True) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "imagegen", "worker", "--fleet", url, "--config", str(config), "--name", name,
               "--concurrency", str(concurrency), "--json"]
    if exit_when_idle:
        command.append("--exit-when-idle")
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(worker: subprocess.Popen[str], timeout: float = 90) -> dict[str, Any]:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def wait_for(predicate: Any, timeout: float = 60.0, what: str = "progress") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class RedisServer:
    """A redis-server this test owns, persisting every write (``appendfsync always``) so that it
    can be killed and started again on the same port with its data."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; run `bash scripts/test`, which installs it")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                                      str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
                                      "--save", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        server.proc.wait(timeout=10)


class ArrivalLog:
    """ASGI middleware in front of an emulator: when each vendor request arrived (monotonic)."""

    def __init__(self, app: Any, path_fragment: str) -> None:
        self.app = app
        self.fragment = path_fragment
        self.arrivals: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") == "POST" and self.fragment in scope["path"]:
            self.arrivals.append(time.monotonic())
        await self.app(scope, receive, send)

    def most_in_any_window(self, window_s: float) -> int:
        """The largest number of arrivals in any ``window_s`` span (a sliding window)."""
        times = sorted(self.arrivals)
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def slot_reuse_lags(self, limit: int) -> list[float]:
        """For every arrival after the first ``limit``: how long after the arrival ``limit``
        places before it (whose slot it took) it came, in order. A shared limit of ``limit`` per
        window holds iff every lag is at least the window; the fleet uses what the limit allows iff
        the lags are not much longer."""
        times = sorted(self.arrivals)
        return [later - earlier for earlier, later in zip(times, times[limit:], strict=False)]
