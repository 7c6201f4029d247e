"""A 50-request vendor batch survives kill -9: another process finishes it through ``wait``.

The emulator runs in this test process with a clock the test moves, so the batch stays pending
while the first client waits on it; the clients are subprocesses sharing one SQLite job store
and ledger. Charges are read from the ledger and checked against the emulator's own books.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagegen import Client
from imagegen.testing import FakeClock, Fault, FaultPlan, LatencyModel, serve

MEMBERS = 50
FAILING = 7  # the member the emulator fails (503), to be resubmitted alone
PROMPTS = [f"a product shot, number {i:02d}" for i in range(MEMBERS)]  # equal length: equal standard price


def _config(tmp: Path, base_url: str) -> Path:
    path = tmp / "imagegen.toml"
    path.write_text(textwrap.dedent(f"""\
        [providers.gemini]
        base_url = "{base_url}"
        api_key = "env:CRASH_TEST_KEY"
        model = "gemini-3.1-flash-lite-image"
        [jobs]
        backend = "sqlite"
        path = "{tmp / 'jobs.sqlite3'}"
        [ledger]
        backend = "sqlite"
        path = "{tmp / 'ledger.sqlite3'}"
        [cache]
        backend = "off"
        """))
    return path


def _run(tmp: Path, code: str, **kwargs) -> subprocess.Popen[str]:
    env = {**os.environ, "CRASH_TEST_KEY": "crash-key", "IMAGEGEN_DATA_DIR": str(tmp / "data")}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


SUBMIT_AND_WAIT = """\
    import json
    from imagegen import Client
    client = Client("imagegen.toml")
    batch = client.submit_batch({prompts!r}, provider="gemini")
    print(json.dumps({{"id": batch.id, "delivery": batch.delivery, "estimate": batch.estimate.batch.usd}}),
          flush=True)
    client.wait(batch.id, timeout=600)
    print("finished", flush=True)
"""

WAIT = """\
    import json
    from imagegen import Client
    client = Client("imagegen.toml")
    result = client.wait({batch_id!r}, timeout=60)
    failed = [m.key for m in result.members if m.status != "succeeded"]
    again = client.resubmit_batch({batch_id!r})
    retried = client.wait(again.id, timeout=60)
    print(json.dumps({{"state": result.state, "images": len(result.images), "failed": failed,
                      "errors": [type(e).__name__ for e in result.errors.values()],
                      "members": [m.job_id for m in result.members], "usd": result.cost.usd,
                      "retried": [m.job_id for m in retried.members], "retried_state": retried.state,
                      "retried_delivery": again.delivery}}))
"""


def test_a_killed_waiter_is_replaced_by_another_process(tmp_path: Path) -> None:
    from imagegen_gemini.emulator import create_emulator

    clock = FakeClock()
    faults = FaultPlan.script(*["ok"] * FAILING, Fault("server_error", status=503))
    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.02, clock=clock, batch_turnaround_s=3600.0,
                               batch_member_faults=faults)
    with serve(emulator) as server:
        _config(tmp_path, server.base_url)
        first = _run(tmp_path, SUBMIT_AND_WAIT.format(prompts=PROMPTS))
        submitted = json.loads(first.stdout.readline() or "{}")
        assert submitted.get("delivery") == "file", first.stderr.read() if first.poll() is not None else submitted
        first.send_signal(signal.SIGKILL)  # mid-wait: the batch is accepted and still pending
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL
        # Charged when the vendor accepted it, before anyone waited: every member at its estimate.
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            held = db.execute("SELECT COUNT(*), SUM(usd), MIN(estimated) FROM ledger "
                              "WHERE state = 'settled'").fetchone()
        assert held[0] == MEMBERS and held[1] == pytest.approx(submitted["estimate"]) and held[2] == 1
        clock.advance(3600.0)  # the batch ends while no process is following it
        emulator.batches.turnaround_s = 0.0  # and later batches end at once

        second = _run(tmp_path, WAIT.format(batch_id=submitted["id"]))
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        report = json.loads(out)

        creates = emulator.counters.calls.get("POST /{version}/models/{model}:batchGenerateContent")
        assert creates == 2  # the batch once, then the failed member alone: nothing paid twice
        assert report["state"] == "succeeded" and report["images"] == MEMBERS - 1
        assert report["errors"] == ["ProviderUnavailableError"] and len(report["failed"]) == 1
        assert report["retried_state"] == "succeeded" and report["retried_delivery"] == "inline"

        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            charges = dict(db.execute("SELECT job_id, usd FROM ledger WHERE state = 'settled'").fetchall())
            assert db.execute("SELECT COUNT(*) FROM ledger WHERE state = 'settled' AND estimated").fetchone()[0] == 0
        members = report["members"]
        assert members[FAILING] not in charges and set(charges) == set(members) - {members[FAILING]} | set(
            report["retried"])
        assert sum(charges.values()) == pytest.approx(emulator.counters.total_usd)

        # 50 % of what the same request costs as a standard call.
        config = {"providers": {"gemini": {"base_url": server.base_url, "api_key": "k",
                                           "model": "gemini-3.1-flash-lite-image"}},
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"}, "ledger": {"backend": "off"}}
        with Client(config) as client:
            standard = client.generate(PROMPTS[0], provider="gemini").cost.usd
        assert {round(usd / standard, 6) for usd in charges.values()} == {0.5}
