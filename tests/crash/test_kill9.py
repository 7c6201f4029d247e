"""kill -9 in the middle of a batch and of a polled job; a new process finishes the work.

The emulators run in this test process (so their books survive the killed client); the
clients run in subprocesses sharing one SQLite job store. "Submitted twice" is read from the
emulators' counters, never from the client's own account.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from imagegen.testing import LatencyModel, serve

PROMPTS = 12
CONCURRENCY = 3
PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow"}


def _emulator(name: str, latency: float):
    model = LatencyModel(base=latency)
    if name == "gemini":
        from imagegen_gemini.emulator import create_emulator

        return create_emulator(latency=model, image_scale=0.02)
    if name == "nb2":
        from imagegen_nanobanana2.emulator import create_emulator

        return create_emulator(latency=model, mode="async", ticks=None, image_scale=0.02)
    from imagegen_wireflow.emulator import create_emulator

    return create_emulator(latency=model, output_max_side=32, executions_per_minute=1e6)


def _write_config(tmp: Path, name: str, base_url: str) -> Path:
    extra = {"gemini": "", "nb2": "poll_interval = 0.05\n",
             "wireflow": "poll_schedule = [0.05, 1.5, 0.2]\nexecutions_per_minute = 1e6\npersist_workflows = false\n"}
    path = tmp / "imagegen.toml"
    path.write_text(textwrap.dedent(f"""\
        default = "{name}"
        [providers.{name}]
        plugin = "{PLUGINS[name]}"
        base_url = "{base_url}"
        api_key = "env:CRASH_TEST_KEY"
        """) + extra[name] + textwrap.dedent(f"""\
        [jobs]
        backend = "sqlite"
        path = "{tmp / 'jobs.sqlite3'}"
        [cache]
        backend = "off"
        """))
    return path


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "CRASH_TEST_KEY": "crash-key", "IMAGEGEN_DATA_DIR": str(tmp / "data")}


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the process to make progress")
        time.sleep(0.02)


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut short by the kill
    return out


def _stored(db: Path) -> dict[str, str]:
    """job id -> status, read straight from the SQLite file the killed process wrote."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db) as conn:
            return dict(conn.execute("SELECT id, status FROM jobs").fetchall())
    except sqlite3.OperationalError:  # the other process is still creating the schema
        return {}


def _submits(name: str, emulator) -> int:
    """Jobs the vendor accepted: Gemini and nano-banana2 charge on accepting one (a request the
    dead client never finished sending is not one), Wireflow counts executions it started."""
    if name == "wireflow":
        return emulator.counters.get("executions")
    return len(emulator.counters.charges)


@pytest.mark.parametrize("name", ["wireflow", "nb2", "gemini"])
def test_a_batch_killed_mid_way_resumes_without_submitting_anything_twice(tmp_path, name):
    emulator = _emulator(name, latency=0.4)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a lighthouse, take {i}\n" for i in range(PROMPTS)))
    out = tmp_path / "out"
    results, db = out / "batch.jsonl", tmp_path / "jobs.sqlite3"
    with serve(emulator) as server:
        config = _write_config(tmp_path, name, server.base_url)
        command = [sys.executable, "-m", "imagegen", "batch", str(prompts), "--concurrency", str(CONCURRENCY),
                   "--out", str(out), "--config", str(config), "--json"]
        first = subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Kill once some prompts are done and others are in flight.
        _wait_for(lambda: len(_lines(results)) >= 3
                  and emulator.counters.calls.get("total", 0) > len(_lines(results)) + 1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        time.sleep(0.6)  # let requests the dead process left in flight finish on the server
        done_at_kill = len(_lines(results))
        stored_at_kill = _stored(db)
        submits_at_kill = _submits(name, emulator)
        assert 3 <= done_at_kill < PROMPTS

        second = subprocess.run(command, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        summary = json.loads(second.stdout)

    assert summary["succeeded"] + summary["skipped"] == PROMPTS and summary["failed"] == 0
    assert summary["skipped"] == done_at_kill
    final = {line["index"]: line for line in _lines(results) if line["status"] == "succeeded"}
    assert sorted(final) == list(range(PROMPTS))
    for line in final.values():  # every finished image is on disk, whole
        for image in line["images"]:
            assert Path(image["path"]).stat().st_size > 0
    final_ids = {line["job_id"] for line in final.values()}
    # Every job the dead process had recorded is finished from the job store, not submitted again.
    assert set(stored_at_kill) <= final_ids
    refs = [c["ref"] for c in emulator.counters.charges]
    assert len(refs) == len(set(refs))  # no job charged twice
    # Submits whose answer died with the process: the vendor accepted them, the job store never
    # heard of them. Wireflow's Idempotency-Key replays them; Gemini (synchronous) and
    # nano-banana2 (no idempotency key in its API) run them again: those, and only those, twice.
    orphans = submits_at_kill - len(stored_at_kill)
    assert 0 <= orphans <= CONCURRENCY
    if name == "wireflow":
        assert _submits(name, emulator) == len(refs) == PROMPTS
        assert {f"{name}:{r}" for r in refs} == final_ids
    else:
        assert _submits(name, emulator) == len(refs) == PROMPTS + orphans
        assert len({f"{name}:{r}" for r in refs} - final_ids) == orphans


RESUMER = textwrap.dedent("""
    import json, sys
    from imagegen import Client
    with Client(sys.argv[1]) as client:
        result = client.generate("a slow lighthouse", provider=sys.argv[2], idempotency_key="order-17")
    print(json.dumps({"job_id": result.job_id, "sha256": result.images[0].sha256}))
""")


@pytest.mark.parametrize("name", ["wireflow", "nb2"])
def test_a_process_killed_while_polling_is_finished_by_another(tmp_path, name):
    emulator = _emulator(name, latency=2.0)
    db = tmp_path / "jobs.sqlite3"
    with serve(emulator) as server:
        config = _write_config(tmp_path, name, server.base_url)
        first = subprocess.Popen([sys.executable, "-c", RESUMER, str(config), name], env=_env(tmp_path),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for(lambda: "running" in _stored(db).values() or "queued" in _stored(db).values())
        (job_id,) = _stored(db)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        assert _submits(name, emulator) == 1

        # `imagegen status` from a third process sees the job the dead one left.
        status = subprocess.run([sys.executable, "-m", "imagegen", "status", job_id, "--json", "--config",
                                 str(config), "--out", str(tmp_path / "status")],
                                env=_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        # On a loaded machine the job may finish before this process has started: either way the
        # job is the dead process's, and nothing is submitted again.
        assert json.loads(status.stdout)["status"] in ("queued", "running", "succeeded")

        second = subprocess.run([sys.executable, "-c", RESUMER, str(config), name], env=_env(tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
    outcome = json.loads(second.stdout)
    assert outcome["job_id"] == job_id
    assert _submits(name, emulator) == 1
    assert [f"{name}:{c['ref']}" for c in emulator.counters.charges] == [job_id]
    assert _stored(db) == {job_id: "succeeded"}

