"""The money audit: every provider x every output-download fault x every entry point, and every
provider x every storage fault. After each case the books must balance (see ``_audit``).

The emulators run in-process (``asgi_transport``: no sockets) wherever a case allows, so the
whole matrix stays fast; the Redis and disk-full cases use real servers and processes.
Gemini answers with its images inline, so output-URL faults cannot happen to it: it is in the
storage half of the matrix (and its truncated answers are in ``test_lifecycle``/the soak).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from imagegen import AsyncClient, Client, StorageError
from imagegen._jobstore import SqliteJobStore
from imagegen._ledger import Ledger
from imagegen.testing import asgi_transport, serve

from ._audit import ENTRY_POINTS, MARGIN_S, Outcome, ledger_books, reconcile, run_entry, write_locked
from ._output_faults import KINDS, OutputFaults
from .conftest import make_emulator, provider_table

URL_PROVIDERS = ("nb2", "nb2async", "wireflow")


def audit_config(tmp_path: Any, names: list[str], **sections: Any) -> dict[str, Any]:
    providers = {name: provider_table(name, f"http://{name}.emu") for name in names}
    config = {"providers": providers, "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")},
              "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")},
              "cache": {"backend": "off"}, "budget": {"total_usd": 100.0},
              "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}}
    config.update(sections)
    return config


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", URL_PROVIDERS)
async def test_output_download_faults_never_pay_twice_nor_lose_a_paid_image(tmp_path, name, kind, entry):
    emulator = make_emulator(name)
    cdn = OutputFaults(emulator.app, kind)
    config = audit_config(tmp_path, [name])
    async with AsyncClient(config, transports={name: asgi_transport(cdn)}) as client:
        outcome = await run_entry(client, entry, name)
        assert cdn.hits and outcome.errors, "the fault must have been met"
        cdn.kind = None  # the CDN recovers: every paid image must now be fetchable for free
        found = await reconcile(client, outcome, {name: emulator})
        assert ledger_books(client) == (found["billed"], found["billed"]) == (emulator.counters.total_usd,) * 2
        assert len(emulator.counters.charges) == 2  # one charge per prompt, whatever failed


# -- storage faults ---------------------------------------------------------------------------

ALL_PROVIDERS = ("gemini", "nb2", "nb2async", "wireflow")


async def _storage_case(tmp_path: Any, name: str, entry: str, config: dict[str, Any],
                        during: Any) -> tuple[Any, Any]:
    """Run ``entry`` inside the ``during`` fault; then, the fault over, a fresh client (which
    replays the journal) reconciles the books. Returns (outcome, emulator)."""
    emulator = make_emulator(name)
    transports = {name: asgi_transport(emulator)}
    async with AsyncClient(config, transports=transports) as client:
        with during():
            outcome = await run_entry(client, entry, name)
    async with AsyncClient(config, transports=transports) as later:
        found = await reconcile(later, outcome, {name: emulator})
        assert ledger_books(later) == (found["billed"], found["billed"]) == (emulator.counters.total_usd,) * 2
    return outcome, emulator


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", ALL_PROVIDERS)
async def test_a_locked_ledger_after_payment_loses_nothing(tmp_path, name, entry):
    config = audit_config(tmp_path, [name], budget={})  # no budget: the ledger is first written after payment
    Ledger(tmp_path / "ledger.sqlite3")
    outcome, emulator = await _storage_case(tmp_path, name, entry, config,
                                            lambda: write_locked(tmp_path / "ledger.sqlite3"))
    assert outcome.results and emulator.counters.charges
    assert all(any("charge journal" in w for w in said) for said in outcome.warnings)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", ALL_PROVIDERS)
async def test_a_locked_job_store_loses_nothing(tmp_path, name, entry):
    config = audit_config(tmp_path, [name])
    SqliteJobStore(tmp_path / "jobs.sqlite3")
    outcome, _ = await _storage_case(tmp_path, name, entry, config, lambda: write_locked(tmp_path / "jobs.sqlite3"))
    if entry == "batch":  # keyed lines claim their key first: refused before anything is paid
        assert {type(e) for e in outcome.errors} == {StorageError}
    else:
        assert outcome.results and all(any("job store" in w for w in said) for said in outcome.warnings)


@pytest.fixture(scope="module")
def own_redis():
    """A redis-server of this module's own, which a case may stop and start again (empty)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `bash scripts/test`, which installs it")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server: dict[str, Any] = {}

    def start() -> None:
        server["proc"] = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop() -> None:
        server["proc"].terminate()
        server["proc"].wait(timeout=10)

    start()
    yield SimpleNamespace(url=f"redis://127.0.0.1:{port}/0", start=start, stop=stop)
    stop()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("name", ALL_PROVIDERS)
async def test_redis_going_down_loses_nothing(tmp_path, own_redis, name, entry):
    prefix = f"audit-{name}-{entry}:"
    stores = {"jobs": {"backend": "redis", "url": own_redis.url},
              "ledger": {"backend": "redis", "url": own_redis.url, "key_prefix": prefix}, "budget": {}}
    config = audit_config(tmp_path, [name], **stores)

    @contextlib.contextmanager
    def down() -> Iterator[None]:
        own_redis.stop()
        try:
            yield
        finally:
            own_redis.start()

    outcome, _ = await _storage_case(tmp_path, name, entry, config, down)
    if entry == "batch":
        assert {type(e) for e in outcome.errors} == {StorageError}
    else:
        assert outcome.results and all(any("journal" in w for w in said) for said in outcome.warnings)


# Disk full, for real: a process whose files may not grow past a few kilobytes (RLIMIT_FSIZE)
# once its stores are open, as a full disk refuses every new page. The charge journal's lines
# are short and go to a fresh file, so it is what still takes the charges.
DISK_FULL_WORKER = textwrap.dedent("""
    import asyncio, json, resource, signal, sys
    from imagegen import AsyncClient
    sys.path.insert(0, sys.argv[3])
    from tests.money._audit import run_entry

    async def main():
        config, name = json.loads(sys.argv[1]), sys.argv[2]
        report = {}
        async with AsyncClient(config) as client:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
            for entry in ("generate", "submit_wait", "batch"):
                outcome = await run_entry(client, entry, name, timeout=4)
                report[entry] = {"results": [r.job_id for r in outcome.results],
                                 "errors": [type(e).__name__ for e in outcome.errors],
                                 "warnings": outcome.warnings, "slowest_failure_s": outcome.slowest_failure_s}
        print(json.dumps(report))

    asyncio.run(main())
""")


@pytest.mark.parametrize("name", ALL_PROVIDERS)
def test_a_full_disk_loses_nothing(tmp_path, name):
    emulator = make_emulator(name)
    with serve(emulator) as server:
        config = audit_config(tmp_path, [name], budget={})
        config["providers"][name]["base_url"] = server.base_url
        root = str(Path(__file__).resolve().parents[2])
        proc = subprocess.run([sys.executable, "-c", DISK_FULL_WORKER, json.dumps(config), name, root],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        outcome = Outcome()
        for entry in report.values():
            assert set(entry["errors"]) <= {"StorageError"}, entry  # refused before paying, or returned
            assert entry["slowest_failure_s"] < 4 + MARGIN_S
        with Client(config) as later:  # replays the journal the full disk left
            returned = {job_id for entry in report.values() for job_id in entry["results"]}
            assert returned and any("journal" in w for e in report.values() for said in e["warnings"] for w in said)
            outcome.results = [later.wait(job_id, timeout=10) if name != "gemini" else _stub(job_id)
                               for job_id in returned]
            billed = emulator.counters.total_usd
            assert later.ledger.total_usd() == later.ledger.spent_usd() == billed
    refs = [c["ref"] for c in emulator.counters.charges]
    assert len(refs) == len(set(refs)) and {f"{name}:{r}" for r in refs} == returned


def _stub(job_id: str) -> Any:
    """Gemini's images came back in the answer (returned above); there is nothing to fetch again."""
    return SimpleNamespace(job_id=job_id)


@pytest.mark.parametrize("entry", ["generate", "batch"])
@pytest.mark.parametrize("name", ALL_PROVIDERS)
async def test_a_corrupt_cache_is_a_miss_never_garbage(tmp_path, name, entry):
    from imagegen._imaging import probe_image

    emulator = make_emulator(name)
    transports = {name: asgi_transport(emulator)}
    config = audit_config(tmp_path, [name], cache={"backend": "disk", "path": str(tmp_path / "cache")})
    cache = tmp_path / "cache"
    async with AsyncClient(config, transports=transports) as client:
        await run_entry(client, entry, name)  # fills the cache
    for blob in (cache / "blobs").glob("*/*"):
        blob.write_bytes(b"not the image this file is named after")
    index = sqlite3.connect(cache / "index.sqlite3")  # and the small images kept in the index
    with index:
        index.execute("UPDATE inline_images SET data = ?", (b"not the image this row is named after",))
    index.close()
    async with AsyncClient(config, transports=transports) as client:
        again = await run_entry(client, entry, name)  # a blob that is not what its name says: a miss
    for part in cache.glob("index.sqlite3*"):
        part.unlink()
    (cache / "index.sqlite3").write_bytes(b"garbage " * 512)  # an index that is not a database at all
    async with AsyncClient(config, transports=transports) as client:
        third = await run_entry(client, entry, name)
        found = await reconcile(client, Outcome(results=[*again.results, *third.results]), {name: emulator})
        assert ledger_books(client) == (found["billed"], found["billed"])
    for outcome in (again, third):
        assert not outcome.errors and len(outcome.results) == 2
        for result in outcome.results:
            assert all(probe_image(image.data, verify=True) for image in result.images)
    if entry == "generate":  # (a batch's lines are found by their keys in the job store first)
        assert all(not r.cached for r in again.results)
        assert all(any("cache cannot be opened" in w for w in said) for said in third.warnings)
