"""Rate limits shared across processes through a real Redis, and jobs resumed after kill -9."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from imagegen import Client
from imagegen._jobstore import RedisJobStore
from imagegen.testing import LatencyModel, serve

from .conftest import providers_config

WORKER = textwrap.dedent("""
    import json, sys
    from imagegen import Client, RateLimitError
    config = json.loads(sys.argv[1])
    ok = limited = 0
    with Client(config) as client:
        for i in range(int(sys.argv[2])):
            try:
                client.generate(f"fox {i}", provider="gemini", timeout=3)
                ok += 1
            except RateLimitError:
                limited += 1
    print(json.dumps({"ok": ok, "limited": limited}))
""")


def test_two_processes_share_one_requests_per_minute_limit(gemini_emulator, redis_url):
    providers = providers_config(gemini=gemini_emulator)
    providers["gemini"]["requests_per_minute"] = 10
    config = {"providers": providers, "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
              "rate_limits": {"backend": "redis", "url": redis_url, "key_prefix": f"t{time.time_ns()}:"}}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(config), "8"],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    assert sum(o["ok"] for o in outcomes) == 10
    assert sum(o["limited"] for o in outcomes) == 6
    assert len(gemini_emulator.emulator.counters.charges) == 10  # the account saw exactly the limit


def test_redis_job_store_round_trip(redis_url, gemini_emulator):
    store = RedisJobStore(redis_url, prefix=f"t{time.time_ns()}:")
    config = {"providers": providers_config(gemini=gemini_emulator), "cache": {"backend": "off"}}
    with Client(config, job_store=store) as client:
        result = client.generate("kept in redis", provider="gemini", idempotency_key="order-7")
    with Client(config, job_store=store) as other:
        job = other.status(result.job_id)
    assert job.status == "succeeded" and job.result.images[0].data == result.images[0].data
    assert store.find("order-7").id == result.job_id
    assert [j.id for j in store.recent()] == [result.job_id]


RESUMER = textwrap.dedent("""
    import json, sys
    from imagegen import Client
    with Client(json.loads(sys.argv[1])) as client:
        result = client.generate("a slow fox", provider="wireflow", idempotency_key="batch-1/item-3")
    print(json.dumps({"job_id": result.job_id, "width": result.images[0].width}))
""")


def test_a_process_killed_mid_wait_is_resumed_without_a_second_charge(tmp_path):
    from imagegen_wireflow.emulator import create_emulator

    emulator = create_emulator(latency=LatencyModel(base=3.0))
    with serve(emulator) as server:
        config = {"providers": providers_config(wireflow=server),
                  "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.db")}, "cache": {"backend": "off"}}
        first = subprocess.Popen([sys.executable, "-c", RESUMER, json.dumps(config)], stdout=subprocess.PIPE)
        with Client(config) as watcher:
            deadline = time.monotonic() + 20
            while watcher.jobs.find("batch-1/item-3") is None and time.monotonic() < deadline:
                time.sleep(0.05)
            job = watcher.jobs.find("batch-1/item-3")
        assert job is not None and job.status == "running"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

        second = subprocess.run([sys.executable, "-c", RESUMER, json.dumps(config)], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["job_id"] == job.id
        executions = [k for k in emulator.counters.calls if k.endswith("/execute")]
        assert sum(emulator.counters.calls[k] for k in executions) == 1
