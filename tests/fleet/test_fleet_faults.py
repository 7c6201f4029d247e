"""A worker killed with -9 mid-batch, and Redis itself restarted mid-batch: the batch finishes,
nothing is lost, and nothing is paid twice beyond the documented bound.

"Paid" is read from the emulators' books, which live in this test process.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from imagegen import Client, ImageRequest
from imagegen.testing import serve

from .conftest import (
    cli_env,
    finish,
    free_port,
    imagegen,
    make_emulator,
    start_worker,
    status_in_process,
    submit_in_process,
    wait_for,
    write_config,
)

NAMES = ("wireflow", "gemini", "nb2")
PER_PROVIDER = 15
CONCURRENCY = 3


def _requests() -> list[dict[str, str]]:
    return [{"prompt": f"a harbour crane, view {i}", "provider": NAMES[i % 3]}
            for i in range(PER_PROVIDER * len(NAMES))]


def _prompts(tmp: Path) -> Path:
    path = tmp / "prompts.jsonl"
    path.write_text("".join(json.dumps(fields) + "\n" for fields in _requests()))
    return path


_HELD_BY_LUA = """
local held = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], 'workers', '-', '+', 100, ARGV[1])) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
  for k = 1, #entry[2], 2 do
    if entry[2][k] == 'i' then held[#held + 1] = entry[2][k + 1] end
  end
end
return held
"""


def _charges(emulators: dict) -> dict[str, list[str]]:
    return {name: [c["ref"] for c in emu.counters.charges] for name, emu in emulators.items()}


@pytest.fixture
def s3_bucket():
    """moto's S3 in server mode on loopback, with one bucket; (endpoint, env for the workers)."""
    boto3 = pytest.importorskip("boto3", reason="the dev extra installs boto3 with moto")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="fleet-results")
    yield endpoint, env
    server.stop()
    for key in env:
        os.environ.pop(key, None)


def test_kill_9_of_a_worker_mid_batch_the_others_finish_its_work(tmp_path, redis_url, s3_bucket):
    endpoint, aws_env = s3_bucket
    emulators = {name: make_emulator(name, latency_s=0.3) for name in NAMES}
    prefix = f"t{time.time_ns()}:"
    with ExitStack() as stack:
        servers = {n: stack.enter_context(serve(e)).base_url for n, e in emulators.items()}
        config = write_config(tmp_path, servers, fleet={"key_prefix": prefix, "visibility_timeout_s": 1.5,
                                                        "storage_options": {"endpoint_url": endpoint}})
        env = cli_env(tmp_path, **aws_env)
        submitted = imagegen("batch", str(_prompts(tmp_path)), "--fleet", redis_url, "--out",
                             "s3://fleet-results/run-1", "--config", str(config), env=env)
        batch_id = submitted["batch_id"]
        workers = {f"w{i}": start_worker(config, redis_url, f"w{i}", env, concurrency=CONCURRENCY)
                   for i in range(3)}
        r = redis.Redis.from_url(redis_url)
        stream = f"{prefix}b:{batch_id}:items"

        def victim_busy() -> bool:
            """w0 has finished something and holds at least two prompts right now, one or more of
            them without an outcome yet. It is stopped (SIGSTOP) while this is read, and left
            stopped when it holds: on a loaded machine it could otherwise finish every prompt it
            holds between this look and the kill (it was killed holding only finished ones once)."""
            os.kill(workers["w0"].pid, signal.SIGSTOP)
            held = {int(i) for i in r.eval(_HELD_BY_LUA, 1, stream, "w0")}
            outcomes = {int(k): json.loads(v)["worker"] for k, v in r.hgetall(f"{prefix}b:{batch_id}:outcomes").items()}
            if len(held) >= 2 and held - outcomes.keys() and "w0" in outcomes.values():
                return True
            os.kill(workers["w0"].pid, signal.SIGCONT)
            return False

        wait_for(victim_busy, what="worker w0 to be mid-batch")
        os.kill(workers["w0"].pid, signal.SIGKILL)
        workers["w0"].wait(timeout=10)
        # The prompts the dead worker held, read in one step (an entry leaves the stream once a
        # survivor has taken it over and acknowledged it).
        orphans = {int(i) for i in r.eval(_HELD_BY_LUA, 1, stream, "w0")}
        orphaned = len(orphans)
        survivors = [finish(workers[n]) for n in ("w1", "w2")]
        status = status_in_process(config, redis_url, batch_id)

    total = PER_PROVIDER * len(NAMES)
    assert orphaned >= 1
    assert status["state"] == "done" and status["succeeded"] == total and status["failed"] == 0
    assert set(status["workers"]) == {"w0", "w1", "w2"} and status["workers"]["w0"]["holding"] == 0  # taken over
    charges = _charges(emulators)
    for refs in charges.values():
        assert len(refs) == len(set(refs))  # no job billed twice
    # Wireflow: exactly once, even for the executions the dead worker had in flight.
    assert len(charges["wireflow"]) == PER_PROVIDER == emulators["wireflow"].counters.get("executions")
    # Vendors without idempotency: at most one extra charge per prompt the dead worker had in
    # flight (the documented bound: its --concurrency).
    extra = len(charges["gemini"]) + len(charges["nb2"]) - 2 * PER_PROVIDER
    assert 0 <= extra <= min(orphaned, CONCURRENCY)
    # batch.jsonl on S3, assembled from every worker's outcomes (the dead one's included).
    import fsspec

    fs = fsspec.filesystem("s3", endpoint_url=endpoint)
    lines = [json.loads(line) for line in fs.cat_file("fleet-results/run-1/batch.jsonl").decode().splitlines()]
    assert [line["index"] for line in lines] == list(range(total))
    assert "w0" in {line["worker"] for line in lines} and {"w1", "w2"} <= {line["worker"] for line in lines}
    # The others finished its work: the prompts it held when it died have outcomes by w1 or w2
    # (one may be w0's own, if it died between recording an outcome and acknowledging it), and
    # every outcome that is not w0's was recorded by a survivor.
    assert [i for i in orphans if lines[i]["worker"] in ("w1", "w2")], orphans
    assert sum(s["processed"] for s in survivors) >= len([line for line in lines if line["worker"] != "w0"])
    assert all(fs.size(line["images"][0]["path"]) > 0 for line in lines)


def test_redis_restarted_mid_batch_the_batch_goes_on(tmp_path, own_redis, monkeypatch):
    emulators = {name: make_emulator(name, latency_s=0.2) for name in NAMES}
    prefix = "restart:"
    with ExitStack() as stack:
        servers = {n: stack.enter_context(serve(e)).base_url for n, e in emulators.items()}
        config = write_config(tmp_path, servers, fleet={"key_prefix": prefix, "visibility_timeout_s": 1.5})
        env = cli_env(tmp_path)
        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")
        batch_id = submit_in_process(config, own_redis.url, [ImageRequest.build(**fields) for fields in _requests()],
                                     str(tmp_path / "out"))
        workers = [start_worker(config, own_redis.url, f"w{i}", env, concurrency=CONCURRENCY) for i in range(2)]
        r = redis.Redis.from_url(own_redis.url)
        wait_for(lambda: r.hlen(f"{prefix}b:{batch_id}:outcomes") >= 10, what="the batch to get going")
        in_flight = r.xpending(f"{prefix}b:{batch_id}:items", "workers")["pending"]
        own_redis.kill()
        time.sleep(1.0)  # workers keep running (and retrying) against no Redis at all
        own_redis.start()
        results = [finish(w) for w in workers]
        status = status_in_process(config, own_redis.url, batch_id)

    total = PER_PROVIDER * len(NAMES)
    assert in_flight >= 1  # Redis went away with prompts being worked on: their results came back to it
    assert sum(x["processed"] for x in results) >= total - 10
    assert status["state"] == "done" and status["succeeded"] == total and status["failed"] == 0
    charges = _charges(emulators)
    assert {name: len(refs) for name, refs in charges.items()} == dict.fromkeys(NAMES, PER_PROVIDER)
    lines = (tmp_path / "out" / "batch.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(total))


def test_sigterm_stops_a_worker_after_what_it_started(tmp_path, redis_url, monkeypatch):
    emulator = make_emulator("wireflow", latency_s=0.3)
    prefix = f"t{time.time_ns()}:"
    with serve(emulator) as server:
        config = write_config(tmp_path, {"wireflow": server.base_url}, fleet={"key_prefix": prefix})
        env = cli_env(tmp_path)
        monkeypatch.setenv("FLEET_TEST_KEY", "fleet-key")
        with Client(config) as client, client.fleet(redis_url) as fleet:  # the Python API, blocking flavour
            batch_id = fleet.submit([f"a paper boat, fold {i}" for i in range(10)], out=str(tmp_path / "out"))
        first = start_worker(config, redis_url, "first", env, concurrency=2, exit_when_idle=False)
        r = redis.Redis.from_url(redis_url)
        wait_for(lambda: r.hlen(f"{prefix}b:{batch_id}:outcomes") >= 2, what="the first outcomes")
        first.send_signal(signal.SIGTERM)
        stopped = finish(first, timeout=30)
        held = r.xpending_range(f"{prefix}b:{batch_id}:items", "workers", "-", "+", 10, consumername="first")
        done_by_first = r.hlen(f"{prefix}b:{batch_id}:outcomes")
        second = finish(start_worker(config, redis_url, "second", env, concurrency=2))

    assert held == [] and stopped["processed"] == done_by_first < 10  # it finished what it had started
    assert second["processed"] == 10 - done_by_first  # and left the rest, untouched, to the others
    assert len(emulator.counters.charges) == 10 == emulator.counters.get("executions")
