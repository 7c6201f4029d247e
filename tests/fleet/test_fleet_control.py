"""Seeing and steering a fleet batch from anywhere: status, pause, resume, cancel, a progress bar.

The worker runs in this process (``client.fleet(url).work``) so the test can start and stop it;
the control commands run as separate CLI processes, as they would on another machine.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from imagegen import AsyncClient
from imagegen.testing import serve

from .conftest import cli_env, imagegen, make_emulator, write_config


def _fleet_setup(tmp_path: Path, server_url: str, redis_url: str) -> tuple[Path, dict[str, str]]:
    config = write_config(tmp_path, {"wireflow": server_url},
                          fleet={"key_prefix": f"t{time.time_ns()}:", "visibility_timeout_s": 2.0})
    return config, cli_env(tmp_path)


def test_status_pause_resume_and_failures_with_reasons(tmp_path, redis_url, monkeypatch):
    emulator = make_emulator("wireflow", latency_s=0.05)
    prompts = ["a red kite", "a blue kite [[fail]]", "a green kite", "a kite at night", "a kite in fog [[fail]]",
               "a yellow kite"]
    with serve(emulator) as server:
        config, env = _fleet_setup(tmp_path, server.base_url, redis_url)
        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")
        file = tmp_path / "prompts.txt"
        file.write_text("\n".join(prompts) + "\n")
        batch_id = imagegen("batch", str(file), "--fleet", redis_url, "--out", str(tmp_path / "out"), "--config",
                            str(config), env=env)["batch_id"]
        paused = imagegen("batch", "pause", batch_id, "--fleet", redis_url, "--config", str(config), env=env)
        assert paused["state"] == "paused" and paused["succeeded"] == 0

        async def scenario() -> tuple[int, int]:
            async with AsyncClient(config) as client:
                fleet = client.fleet(redis_url)
                stop = asyncio.Event()
                worker = asyncio.create_task(fleet.work(concurrency=2, stop=stop))
                await asyncio.sleep(1.0)  # a paused batch gives the worker nothing to do
                while_paused = emulator.counters.get("executions")
                await fleet.resume(batch_id)
                while not (await fleet.status(batch_id)).over:  # noqa: ASYNC110 - polling Redis
                    await asyncio.sleep(0.05)
                stop.set()
                processed = await worker
                await fleet.aclose()
                return while_paused, processed

        while_paused, processed = asyncio.run(scenario())
        status = imagegen("batch", "status", batch_id, "--fleet", redis_url, "--config", str(config), env=env)
        bar = imagegen_text("batch", "status", batch_id, "--watch", "--fleet", redis_url, "--config", str(config),
                            env=env)

    assert while_paused == 0 and processed == len(prompts)
    assert status["state"] == "done" and (status["succeeded"], status["failed"]) == (4, 2)
    assert status["providers"]["wireflow"]["done"] == 6
    assert status["usd"] == round(emulator.counters.total_usd, 9) > 0  # failed executions are not billed
    assert sorted(f["index"] for f in status["failures"]) == [1, 4]
    assert {f["error"]["type"] for f in status["failures"]} == {"JobFailedError"}
    assert status["eta_s"] == 0.0
    assert len(status["workers"]) == 1 and all(view["holding"] == 0 for view in status["workers"].values())
    assert "6/6" in bar  # the progress bar, attached from another process, ends full
    lines = [json.loads(line) for line in (tmp_path / "out" / "batch.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "failed", "succeeded", "succeeded", "failed",
                                                  "succeeded"]


def imagegen_text(*args: str, env: dict[str, str]) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "imagegen", *args], env={**env, "COLUMNS": "120"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr  # the batch had failures
    return done.stdout


def test_cancel_stops_the_batch_and_keeps_what_was_paid_for(tmp_path, redis_url, monkeypatch):
    emulator = make_emulator("wireflow", latency_s=0.3)
    with serve(emulator) as server:
        config, env = _fleet_setup(tmp_path, server.base_url, redis_url)
        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")

        async def scenario() -> tuple[str, int, dict]:
            async with AsyncClient(config) as client:
                fleet = client.fleet(redis_url)
                batch_id = await fleet.submit([f"kite number {i}" for i in range(20)], out=str(tmp_path / "out"))

                async def two_done() -> bool:
                    return (await fleet.status(batch_id)).succeeded >= 2

                stop = asyncio.Event()
                worker = asyncio.create_task(fleet.work(concurrency=2, stop=stop))
                while not await two_done():  # noqa: ASYNC110 - polling Redis
                    await asyncio.sleep(0.05)
                cancelled = await fleet.cancel(batch_id)
                stop.set()
                processed = await worker
                final = (await fleet.status(batch_id)).model_dump()
                await fleet.aclose()
                return batch_id, processed, {"at_cancel": cancelled.model_dump(), "final": final}

        batch_id, processed, seen = asyncio.run(scenario())

    final = seen["final"]
    assert final["state"] == "cancelled" and final["reason"] == "cancelled by a user"
    assert final["succeeded"] + final["cancelled"] == 20 and final["cancelled"] >= 14
    # Only what started before the cancel was paid for, and every payment has its outcome.
    assert len(emulator.counters.charges) == final["succeeded"] == processed
    # batch.jsonl holds them all, those that finished after the cancel too.
    lines = (tmp_path / "out" / "batch.jsonl").read_text().splitlines()
    assert seen["at_cancel"]["succeeded"] <= len(lines) == final["succeeded"]


def test_a_budget_holds_across_workers_and_pauses_the_batch(tmp_path, redis_url, monkeypatch):
    emulator = make_emulator("gemini", latency_s=0.05)
    with serve(emulator) as server:
        config = write_config(tmp_path, {"gemini": server.base_url}, fleet={"key_prefix": f"t{time.time_ns()}:"})
        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")

        async def scenario() -> tuple[dict, float]:
            async with AsyncClient(config) as probe:
                estimate = (await probe.estimate("a budget kite")).usd
            # Room for two images and a half: the third reservation is refused, whichever worker asks.
            with config.open("a") as toml:
                toml.write(f'[budget]\ntotal_usd = {estimate * 2.5}\n[ledger]\nkey_prefix = "t{time.time_ns()}:"\n')
            async with AsyncClient(config) as client:
                fleet = client.fleet(redis_url)
                batch_id = await fleet.submit([f"a budget kite, take {i}" for i in range(8)],
                                              out=str(tmp_path / "out"))
                stop = asyncio.Event()
                workers = [asyncio.create_task(fleet.work(concurrency=2, name=f"w{i}", stop=stop)) for i in range(2)]
                while (await fleet.status(batch_id)).state != "paused":  # noqa: ASYNC110 - polling Redis
                    await asyncio.sleep(0.05)
                stop.set()
                await asyncio.gather(*workers)
                status = (await fleet.status(batch_id)).model_dump()
                await fleet.aclose()
                return status, estimate

        status, estimate = asyncio.run(scenario())

    assert status["state"] == "paused" and status["reason"].startswith("budget: ")
    assert status["succeeded"] == 2 == len(emulator.counters.charges)
    assert emulator.counters.total_usd <= estimate * 2.5
