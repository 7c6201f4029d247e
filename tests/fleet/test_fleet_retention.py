"""A finished batch leaves Redis almost nothing: its outcomes live in its ``batch.jsonl``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import redis

from imagegen import AsyncClient
from imagegen.testing import serve

from .conftest import make_emulator, write_config

PROMPTS = 12


def test_a_done_batch_keeps_its_outcomes_in_its_results_file_not_in_redis(tmp_path: Path, redis_url: str,
                                                                          monkeypatch: pytest.MonkeyPatch):
    emulator = make_emulator("wireflow", latency_s=0.01)
    prefix = f"t{time.time_ns()}:"
    monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")
    r = redis.Redis.from_url(redis_url)
    with serve(emulator) as server:
        config = write_config(tmp_path, {"wireflow": server.base_url}, fleet={"key_prefix": prefix})

        async def scenario() -> tuple[str, list[dict], int, dict]:
            async with AsyncClient(config) as client:
                fleet = client.fleet(redis_url)
                try:
                    batch_id = await fleet.submit([f"a long ({i}) and detailed prompt " * 8 for i in range(PROMPTS)],
                                                  out=str(tmp_path / "out"))
                    await fleet.work(concurrency=4, exit_when_idle=True)
                    results = await fleet.results(batch_id)
                    # A worker that held a prompt of the batch all along (or a redelivery) records
                    # its outcome late: nothing changes, nothing is kept.
                    late = await fleet.queue.record(batch_id, 0, {**results[0], "worker": "late"})
                    return batch_id, results, late, (await fleet.status(batch_id)).model_dump()
                finally:
                    await fleet.aclose()

        batch_id, results, late, status = asyncio.run(scenario())

    on_file = [json.loads(line) for line in (tmp_path / "out" / "batch.jsonl").read_text().splitlines()]
    assert results == on_file and [line["index"] for line in on_file] == list(range(PROMPTS))
    assert late == 0 and status["succeeded"] == PROMPTS == len(emulator.counters.charges)
    assert status["state"] == "done" and status["eta_s"] == 0.0
    # What Redis still holds for the batch: its meta, counters and (empty) stream - no per-prompt data.
    keys = {k.decode().removeprefix(f"{prefix}b:{batch_id}:") for k in r.keys(f"{prefix}b:{batch_id}:*")}
    assert keys == {"meta", "counts", "items"}
    assert r.xlen(f"{prefix}b:{batch_id}:items") == 0
    assert sum(r.memory_usage(f"{prefix}b:{batch_id}:{k}") or 0 for k in keys) < 4_000  # not ~300 B x prompts
    assert all(r.ttl(f"{prefix}b:{batch_id}:{k}") > 0 for k in keys)  # and that goes after KEEP_FINISHED_S
