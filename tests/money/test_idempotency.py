"""Idempotency keys mean what Stripe's mean, across calls and across processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

from imagegen import AsyncClient, Client, IdempotencyConflictError
from imagegen.testing import serve

from .conftest import config_for, make_emulator


def test_the_same_key_with_other_parameters_is_refused_before_any_call(tmp_path):
    emulator = make_emulator("nb2")
    with serve(emulator) as server, Client(config_for({"nb2": server}, tmp_path)) as client:
        first = client.generate("a red fox", provider="nb2", idempotency_key="order-1")
        calls = emulator.counters.calls["total"]
        with pytest.raises(IdempotencyConflictError) as info:
            client.generate("a blue whale", provider="nb2", idempotency_key="order-1")
        again = client.generate("a red fox", provider="nb2", idempotency_key="order-1", timeout=30)
    assert info.value.idempotency_key == "order-1"
    assert emulator.counters.calls["total"] == calls  # neither the refusal nor the replay sent anything
    assert again.job_id == first.job_id and again.images[0].data == first.images[0].data
    assert len(emulator.counters.charges) == 1


async def test_concurrent_calls_with_one_key_pay_once(tmp_path):
    emulator = make_emulator("nb2", latency=0.3)
    with serve(emulator) as server:
        async with AsyncClient(config_for({"nb2": server}, tmp_path)) as client:
            results = await asyncio.gather(*(client.generate("a fox", provider="nb2", idempotency_key="k")
                                             for _ in range(4)))
    assert len(emulator.counters.charges) == 1
    assert {r.job_id for r in results} == {f"nb2:{emulator.counters.charges[0]['ref']}"}


def test_submit_twice_with_one_key_is_one_job(tmp_path):
    emulator = make_emulator("nb2async")
    with serve(emulator) as server, Client(config_for({"nb2async": server}, tmp_path)) as client:
        first = client.submit("a fox", provider="nb2async", idempotency_key="sub-1")
        second = client.submit("a fox", provider="nb2async", idempotency_key="sub-1")
        with pytest.raises(IdempotencyConflictError):
            client.submit("a cat", provider="nb2async", idempotency_key="sub-1")
    assert first.id == second.id and len(emulator.counters.charges) == 1


WORKER = textwrap.dedent("""
    import json, sys
    from imagegen import Client
    with Client(json.loads(sys.argv[1])) as client:
        result = client.generate("a slow fox", provider=sys.argv[2], idempotency_key="shared-1")
    print(json.dumps({"job_id": result.job_id}))
""")


@pytest.mark.parametrize("name", ["gemini", "nb2"])
def test_two_processes_with_one_key_pay_once(tmp_path, name):
    emulator = make_emulator(name, latency=0.8)
    with serve(emulator) as server:
        config = json.dumps(config_for({name: server}, tmp_path))
        workers = [subprocess.Popen([sys.executable, "-c", WORKER, config, name], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [w.communicate(timeout=60) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    job_ids = {json.loads(out)["job_id"] for out, _ in outputs}
    assert len(emulator.counters.charges) == 1
    assert job_ids == {f"{name}:{emulator.counters.charges[0]['ref']}"}
