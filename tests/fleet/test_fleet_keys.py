"""One key for one request: a prompts file run by local ``imagegen batch`` and on a fleet pays once."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from imagegen import AsyncClient, ImageRequest
from imagegen.cli._prompts import read_prompt_file
from imagegen.cli._resume import keyed_items
from imagegen.fleet import item_keys
from imagegen.testing import serve

from .conftest import cli_env, imagegen, make_emulator, write_config

FILE = """\
a kingfisher on a branch
{"prompt": "a kingfisher on a branch", "size": "2K"}
a kingfisher on a branch
{"prompt": "an otter", "idempotency_key": "my-otter"}
"""


def test_local_and_fleet_batches_key_every_line_alike(tmp_path: Path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(FILE)
    lines = read_prompt_file(prompts)
    local = [item.key for item in keyed_items(lines, {"provider": "gemini"})]
    fleet = item_keys([line.request({"provider": "gemini"}) for line in lines])
    assert local == fleet
    assert len(set(local)) == 4  # the repeated line is a second image; the size makes another request
    assert local[3] == "my-otter"  # a line's own key names its request in both
    # Content, not position: the same lines in another order have the same keys (identical lines
    # are interchangeable: the first of them is always occurrence 1).
    assert sorted(item_keys([line.request({"provider": "gemini"}) for line in reversed(lines)])) == sorted(local)
    assert item_keys([ImageRequest.build(prompt="an otter", provider="gemini")]) != ["my-otter"]


def test_a_file_run_locally_then_on_the_fleet_is_paid_once(tmp_path: Path, redis_url: str, monkeypatch):
    emulator = make_emulator("gemini", latency_s=0.01)
    tag = time.time_ns()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"a kingfisher {tag}\na kingfisher {tag}\nan otter {tag}\n")
    with serve(emulator) as server:
        config = write_config(tmp_path, {"gemini": server.base_url}, fleet={"key_prefix": f"t{tag}:"})
        # The local run keeps its jobs where the fleet's workers look: the fleet's Redis.
        config.write_text(config.read_text() + f'[jobs]\nbackend = "redis"\nurl = "{redis_url}"\n')
        local = imagegen("batch", str(prompts), "--out", str(tmp_path / "local"), "--config", str(config),
                         env=cli_env(tmp_path))
        assert (local["succeeded"], len(emulator.counters.charges)) == (3, 3)  # the repeated line twice

        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")

        async def on_the_fleet() -> list[dict]:
            async with AsyncClient(config) as client:
                fleet = client.fleet(redis_url)
                try:
                    requests = [line.request({}) for line in read_prompt_file(prompts)]
                    batch_id = await fleet.submit(requests, out=str(tmp_path / "fleet"))
                    await fleet.work(concurrency=3, exit_when_idle=True)
                    return await fleet.results(batch_id)
                finally:
                    await fleet.aclose()

        lines = asyncio.run(on_the_fleet())

    assert len(emulator.counters.charges) == 3  # the fleet found every job the local run paid for
    assert [line["status"] for line in lines] == ["succeeded"] * 3
    local_lines = [json.loads(x) for x in (tmp_path / "local" / "batch.jsonl").read_text().splitlines()]
    assert sorted(line["key"] for line in lines) == sorted(line["key"] for line in local_lines)
    assert {line["job_id"] for line in lines} == {line["job_id"] for line in local_lines}
