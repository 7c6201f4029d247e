"""A slow worker is never a dead one: its prompts are neither run twice nor paid twice.

Two workers in this process, each on its own thread and event loop (as on two machines), a
Gemini emulator (no idempotency on the vendor's side). The "slow" worker takes every prompt,
then its event loop stands still right before it would send (``time.sleep`` in its limiter:
an SDK import or a CPU-starved machine does the same) while the other worker runs. The
idempotency claim's lease is shrunk, so its loop-driven renewal lapses during the stall.

- *slow*: the slow worker's process still runs, so its prompts stay its own (renewed from a
  thread, not from the stalled loop): the other worker takes none.
- *frozen*: the whole worker stands still (its renewing thread too) until the other worker has
  taken its prompts over; when it wakes up it sends nothing (it lost them).
- *claim*: the same prompts in a second batch, run by the other worker while the slow one
  stands still: it takes the lapsed claims and is mid-call when the slow one wakes up, which
  then sends nothing (its claim is gone) and later finds the other worker's jobs.

Each scenario ends with exactly one vendor charge per distinct prompt (before the fence, the
same runs paid 7 or 8 for 4, or ran every prompt twice). Timing only decides *when* things happen, never the outcome:
the stalls end on conditions seen in Redis or at the emulator.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

import imagegen._claims
import imagegen._pipeline
from imagegen import AsyncClient
from imagegen.fleet import FleetLimiter
from imagegen.fleet._lease import Holdings
from imagegen.testing import serve

from .conftest import ArrivalLog, make_emulator, wait_for, write_config

PROMPTS = 4
VISIBILITY_S = 1.0
CLAIM_LEASE_S = 1.0
LATENCY_S = 1.5  # long enough for the other worker to be mid-call when the slow one wakes


class Stall:
    """Stands the slow worker's event loop (and, when frozen, its renewing thread) still."""

    def __init__(self) -> None:
        self.stalled = threading.Event()
        self.release = threading.Event()

    def hold(self, thread_name: str) -> None:
        if threading.current_thread().name == thread_name and not self.release.is_set():
            self.stalled.set()
            self.release.wait(timeout=60)


class Fleet:
    """The two workers' surroundings: config, Redis, emulator, and the slow worker's stall."""

    def __init__(self, config: Path, url: str, prefix: str, emulator: Any, arrivals: ArrivalLog, out: Path) -> None:
        self.config, self.url, self.prefix, self.out = config, url, prefix, out
        self.emulator, self.arrivals = emulator, arrivals
        self.stall = Stall()
        self.results: dict[str, Any] = {}
        self.threads: list[threading.Thread] = []

    def submit(self, name: str) -> str:
        async def submit() -> str:
            async with AsyncClient(self.config) as client:
                fleet = client.fleet(self.url)
                try:
                    return await fleet.submit([f"a heron ({self.prefix}), take {i}" for i in range(PROMPTS)],
                                              out=str(self.out / name))
                finally:
                    await fleet.aclose()

        return asyncio.run(submit())

    def start(self, name: str) -> None:
        async def work() -> int:
            async with AsyncClient(self.config) as client:
                fleet = client.fleet(self.url)
                try:
                    return await fleet.work(concurrency=PROMPTS, name=name, exit_when_idle=True)
                finally:
                    await fleet.aclose()

        def run() -> None:
            try:
                self.results[name] = asyncio.run(work())
            except BaseException as exc:  # reported by the test
                self.results[name] = exc

        thread = threading.Thread(target=run, name=f"worker-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def owners(self, batch_id: str) -> list[str]:
        pending = redis.Redis.from_url(self.url).xpending_range(f"{self.prefix}b:{batch_id}:items", "workers", "-",
                                                                "+", 100)
        return [p["consumer"].decode() for p in pending]

    def join(self) -> None:
        self.stall.release.set()
        for thread in self.threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads)
        assert all(isinstance(n, int) for n in self.results.values()), self.results

    def charges(self) -> int:
        return len(self.emulator.counters.charges)

    def lines(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.out / name / "batch.jsonl").read_text().splitlines()]


@pytest.fixture
def fleet(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(imagegen._pipeline, "held_claim",
                        functools.partial(imagegen._claims.held_claim, lease_s=CLAIM_LEASE_S))
    monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")
    emulator = make_emulator("gemini", latency_s=LATENCY_S)
    arrivals = ArrivalLog(emulator.app, ":generateContent")
    prefix = f"t{time.time_ns()}:"
    with serve(arrivals) as server:
        config = write_config(tmp_path, {"gemini": server.base_url},
                              fleet={"key_prefix": prefix, "visibility_timeout_s": VISIBILITY_S})
        setup = Fleet(config, redis_url, prefix, emulator, arrivals, tmp_path / "out")
        original_slot = FleetLimiter.slot

        @asynccontextmanager
        async def stalling_slot(self: FleetLimiter, provider: str, **limits: Any) -> AsyncIterator[None]:
            setup.stall.hold("worker-slow")  # blocks the whole event loop: nothing else of it runs
            async with original_slot(self, provider, **limits):
                yield

        monkeypatch.setattr(FleetLimiter, "slot", stalling_slot)
        try:
            yield setup
        finally:
            setup.stall.release.set()


def _slow_worker_holds_everything(fleet: Fleet, batch_id: str) -> None:
    fleet.start("slow")
    assert fleet.stall.stalled.wait(timeout=60), "the slow worker never reached its first send"
    wait_for(lambda: fleet.owners(batch_id) == ["slow"] * PROMPTS, what="the slow worker's prompts")


def test_a_slow_worker_keeps_its_prompts(fleet: Fleet):
    batch_id = fleet.submit("one")
    _slow_worker_holds_everything(fleet, batch_id)
    fleet.start("other")
    # The other worker looks for idle prompts when it starts and every VISIBILITY_S / 2: by now
    # it has looked at least twice after they would have gone idle for VISIBILITY_S.
    time.sleep(2 * VISIBILITY_S)
    assert fleet.owners(batch_id) == ["slow"] * PROMPTS
    fleet.join()
    assert fleet.charges() == PROMPTS
    assert fleet.results == {"slow": PROMPTS, "other": 0}
    assert {line["worker"] for line in fleet.lines("one")} == {"slow"}


def test_a_frozen_worker_that_lost_its_prompts_sends_none_of_them(fleet: Fleet, monkeypatch: pytest.MonkeyPatch):
    original_renew = Holdings.renew

    def frozen_renew(self: Holdings) -> list[tuple[str, bytes]]:
        fleet.stall.hold("imagegen-fleet-hold-slow")
        return original_renew(self)

    monkeypatch.setattr(Holdings, "renew", frozen_renew)
    batch_id = fleet.submit("one")
    _slow_worker_holds_everything(fleet, batch_id)
    fleet.start("other")
    wait_for(lambda: fleet.owners(batch_id) == ["other"] * PROMPTS, what="the other worker to take the prompts over")
    fleet.join()
    assert fleet.charges() == PROMPTS
    assert fleet.results == {"slow": 0, "other": PROMPTS}
    assert {line["worker"] for line in fleet.lines("one")} == {"other"}


def test_a_worker_whose_claim_lapsed_sends_nothing(fleet: Fleet):
    first = fleet.submit("one")
    _slow_worker_holds_everything(fleet, first)
    fleet.submit("two")  # the same prompts: the same idempotency keys
    fleet.start("other")
    wait_for(lambda: len(fleet.arrivals.arrivals) == PROMPTS, what="the other worker's calls")
    fleet.join()  # the slow worker wakes while the other one waits for the vendor
    assert fleet.charges() == PROMPTS  # for 2 x PROMPTS prompts: the second batch asks for the same images
    assert fleet.results["slow"] + fleet.results["other"] == 2 * PROMPTS
    for name in ("one", "two"):
        assert [line["status"] for line in fleet.lines(name)] == ["succeeded"] * PROMPTS
