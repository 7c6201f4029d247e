"""Storage faults: before payment a typed StorageError, after payment never a lost result."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from imagegen import Client, StorageError
from imagegen._jobstore import SqliteJobStore
from imagegen._journal import journal_for
from imagegen._ledger import Ledger
from imagegen.testing import serve

from ._audit import write_locked
from .conftest import config_for, make_emulator


def test_a_locked_ledger_before_payment_is_a_storage_error_within_the_deadline(tmp_path):
    emulator = make_emulator("nb2")
    Ledger(tmp_path / "ledger.sqlite3")
    with serve(emulator) as server, Client(config_for({"nb2": server}, tmp_path, budget={"daily_usd": 5})) as client:
        with write_locked(tmp_path / "ledger.sqlite3"):
            started = time.monotonic()
            with pytest.raises(StorageError) as info:
                client.generate("a fox", provider="nb2", timeout=1.5)
            took = time.monotonic() - started
    assert info.value.store == "ledger" and "lock" in info.value.message
    assert took < 1.5 + 1.0
    assert emulator.counters.calls.get("total", 0) == 0  # nothing was sent, nothing paid


def test_a_locked_ledger_after_payment_keeps_the_result_and_journals_the_charge(tmp_path):
    emulator = make_emulator("nb2")
    config = config_for({"nb2": server} if (server := serve(emulator).start()) else {}, tmp_path)
    try:
        Ledger(tmp_path / "ledger.sqlite3")
        with Client(config) as client, write_locked(tmp_path / "ledger.sqlite3"):
            result = client.generate("a fox", provider="nb2", timeout=4)
            journal = journal_for(client.ledger)
        assert result.images and result.cost.usd == pytest.approx(0.039)
        assert any("charge journal" in w for w in result.warnings)
        assert journal.pending()
        with Client(config) as later:  # the next start replays the journal
            assert later.ledger.total_usd() == later.ledger.spent_usd() == emulator.counters.total_usd
            assert not journal.pending()
            assert [e.job_id for e in later.ledger.entries()] == [result.job_id]
    finally:
        server.stop()


def test_a_locked_job_store_after_payment_keeps_the_result(tmp_path):
    emulator = make_emulator("nb2async")
    with serve(emulator) as server, Client(config_for({"nb2async": server}, tmp_path)) as client:
        SqliteJobStore(tmp_path / "jobs.sqlite3")
        with write_locked(tmp_path / "jobs.sqlite3"):
            result = client.generate("a fox", provider="nb2async", timeout=8)
        assert result.images and any("job store could not record" in w for w in result.warnings)
        assert client.ledger.total_usd() == emulator.counters.total_usd == pytest.approx(0.039)
        assert client.wait(result.job_id, timeout=5).images  # from the vendor, without paying
    assert len(emulator.counters.charges) == 1


def test_a_locked_job_store_before_payment_is_a_storage_error(tmp_path):
    emulator = make_emulator("nb2")
    with serve(emulator) as server, Client(config_for({"nb2": server}, tmp_path)) as client:
        SqliteJobStore(tmp_path / "jobs.sqlite3")
        with write_locked(tmp_path / "jobs.sqlite3"), pytest.raises(StorageError) as info:
            client.generate("a fox", provider="nb2", timeout=1, idempotency_key="order-1")  # claims the key first
    assert info.value.store == "job store" and emulator.counters.calls.get("total", 0) == 0


def test_redis_down_before_payment_is_a_storage_error(tmp_path):
    emulator = make_emulator("gemini")
    stores = {"jobs": {"backend": "redis", "url": "redis://127.0.0.1:1/0"},
              "ledger": {"backend": "redis", "url": "redis://127.0.0.1:1/0"}}
    with serve(emulator) as server, Client(config_for({"gemini": server}, tmp_path, budget={"daily_usd": 5},
                                                      **stores)) as client:
        with pytest.raises(StorageError) as info:
            client.generate("a fox", provider="gemini", timeout=5)
    assert "ConnectionError" in info.value.message and emulator.counters.calls.get("total", 0) == 0


def test_the_cli_reports_a_storage_fault_as_one_json_object_and_exit_5(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the job store's directory should be")
    config = tmp_path / "imagegen.toml"
    config.write_text(f'[providers.gemini]\napi_key = "env:GEMINI_API_KEY"\nbase_url = "http://127.0.0.1:1"\n'
                      f'[jobs]\npath = "{blocker / "jobs.sqlite3"}"\n')
    proc = subprocess.run([sys.executable, "-m", "imagegen", "generate", "x", "--provider", "gemini", "--json",
                           "--config", str(config)], capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, "GEMINI_API_KEY": "k"})
    assert proc.returncode == 5, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "StorageError" and error["store"] == "job store"
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("cache", ["unwritable", "redis_down"])
def test_a_cache_that_cannot_be_used_is_a_miss_with_one_warning(tmp_path, cache):
    emulator = make_emulator("gemini")
    if cache == "unwritable":  # a file where the cache directory should be: nothing can be made there
        (tmp_path / "cache").write_text("not a directory")
        section = {"backend": "disk", "path": str(tmp_path / "cache")}
    else:
        section = {"backend": "redis", "url": "redis://127.0.0.1:1/0"}
    with serve(emulator) as server, Client(config_for({"gemini": server}, tmp_path, cache=section)) as client:
        results = [client.generate("a fox", provider="gemini", timeout=10) for _ in range(2)]
    assert all(r.images and not r.cached for r in results)
    assert all(sum("cache" in w for w in r.warnings) == 1 for r in results), [r.warnings for r in results]
    assert len(emulator.counters.charges) == 2  # no cache: each call is a call
