"""Stores stay flat: maintained budget totals, the single writer per store, batched eviction.

The cost of these mechanisms is measured in benchmarks/ (store_scaling, full_stores); these
tests check that they stay correct: totals equal to the sum of the rows under concurrency and
across processes, writes committed on close and at exit, a cache under its cap whose files
are exactly the ones its entries name.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagegen import BudgetExceededError, Image, ImageResult, _cache, _ledger
from imagegen._cache import LOW_WATER, DiskCache, MemoryCache
from imagegen._ledger import BudgetLimits, Ledger, _periods
from imagegen._sqlite import Writer, connect
from imagegen.testing import synth_image

LIMITS = BudgetLimits(daily_usd=1000.0, monthly_usd=1000.0, total_usd=1000.0)


def summed_totals(path: Path) -> dict[str, float]:
    """What the totals must be: settled rows plus live reservations, summed the slow way."""
    db = sqlite3.connect(path)
    sums: dict[str, float] = {}
    for at, usd in db.execute("SELECT at, usd FROM ledger WHERE state IN ('settled', 'reserved')"):
        for period in _periods(at):
            sums[period] = sums.get(period, 0.0) + usd
    db.close()
    return sums


def assert_totals_match(ledger: Ledger) -> None:
    kept = {k: v for k, v in ledger.period_totals().items() if abs(v) > 1e-9}
    assert kept.keys() == summed_totals(Path(ledger.path)).keys()
    for period, usd in summed_totals(Path(ledger.path)).items():
        assert kept[period] == pytest.approx(usd, abs=1e-9)


def churn(ledger: Ledger, worker: int, calls: int) -> None:
    """Every kind of ledger write: settled at another price, released, recorded, charged twice."""
    for i in range(calls):
        held = ledger.reserve(provider="p", model="m", usd=0.03, limits=LIMITS)
        if i % 4 == 0:
            ledger.release(held)
        else:
            ledger.settle(held, usd=0.02 + 0.01 * (i % 3), credits=None, job_id=f"p:{worker}-{i % 5}",
                          cached=False, estimated=False)
        ledger.record(provider="p", model="m", usd=0.005, credits=None, job_id=None, cached=False, estimated=True)


def test_totals_equal_the_sum_of_the_rows_under_concurrent_threads(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    threads = [threading.Thread(target=churn, args=(ledger, n, 40)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_totals_match(ledger)
    assert ledger.period_totals()["total"] == pytest.approx(ledger.total_usd(), abs=1e-9)
    ledger.close()


CHURN = """
import sys
from imagegen._ledger import Ledger
from tests.cost.test_flat_stores import churn
churn(Ledger(sys.argv[1]), int(sys.argv[2]), 30)
"""


def test_totals_equal_the_sum_of_the_rows_across_processes(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", CHURN, str(path), str(n)], cwd=root) for n in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert_totals_match(Ledger(path))


async def test_a_budget_holds_and_totals_match_under_concurrent_async_calls(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    limits = BudgetLimits(daily_usd=1.0)

    async def one() -> bool:
        try:
            held = await ledger.areserve(provider="p", model="m", usd=0.1, limits=limits)
        except BudgetExceededError:
            return False
        await asyncio.sleep(0)
        await ledger.asettle(held, usd=0.1, credits=None, job_id=None, cached=False, estimated=False)
        return True

    outcomes = await asyncio.gather(*(one() for _ in range(40)))
    assert sum(outcomes) == 10
    assert ledger.total_usd() == pytest.approx(1.0)
    assert_totals_match(ledger)


def test_a_ledger_written_before_totals_gets_them_on_first_open(tmp_path, monkeypatch):
    path = tmp_path / "ledger.sqlite3"
    now = time.time()
    db = sqlite3.connect(path)
    db.execute(_ledger._SCHEMA[0])
    rows = [("a", now - 40 * 86400, "settled", 1.5), ("b", now, "settled", 0.25),
            ("c", now - 60, "reserved", 0.5), ("d", now - 7200, "reserved", 9.0)]  # d: a crashed process's
    db.executemany("INSERT INTO ledger VALUES (?, ?, ?, 'p', 'm', NULL, ?, NULL, 0, 0)",
                   [(i, at, state, usd) for i, at, state, usd in rows])
    db.commit()
    db.close()
    ledger = Ledger(path)
    assert ledger.period_totals()["total"] == pytest.approx(2.25)
    assert_totals_match(ledger)
    with pytest.raises(BudgetExceededError):
        ledger.reserve(provider="p", model="m", usd=1.0, limits=BudgetLimits(total_usd=3.0))


def test_a_stale_reservation_stops_counting_and_a_late_settle_still_counts(tmp_path, monkeypatch):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    limits = BudgetLimits(total_usd=1.0)

    class Earlier:
        @staticmethod
        def time() -> float:
            return time.time() - _ledger.STALE_RESERVATION_S - 5

    monkeypatch.setattr(_ledger, "time", Earlier)
    stale = ledger.reserve(provider="p", model="m", usd=0.8, limits=limits)
    monkeypatch.undo()
    held = ledger.reserve(provider="p", model="m", usd=0.8, limits=limits)  # the stale one expired
    assert_totals_match(ledger)
    ledger.settle(stale, usd=0.1, credits=None, job_id=None, cached=False, estimated=False)  # the call did finish
    assert ledger.period_totals()["total"] == pytest.approx(0.9)
    ledger.release(held)
    assert ledger.period_totals()["total"] == pytest.approx(0.1)
    assert_totals_match(ledger)


def test_the_memory_ledger_keeps_totals_too():
    ledger = Ledger(":memory:")
    churn(ledger, 0, 12)
    assert ledger.period_totals()["total"] == pytest.approx(ledger.total_usd(), abs=1e-9)


# -- the writer ------------------------------------------------------------------------


def rows(path: Path) -> list[tuple[int]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT n FROM t ORDER BY n").fetchall()
    finally:
        db.close()


def make_writer(path: Path) -> Writer:
    db = connect(path)
    db.execute("CREATE TABLE t (n INTEGER UNIQUE)")
    db.close()
    return Writer(lambda: connect(path), name="test")


def test_a_resolved_write_is_committed_and_a_failing_one_is_rolled_back_alone(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    futures = [writer.submit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", (n,))) for n in (1, 2, 2, 3)]
    outcomes = [f.exception() for f in futures]
    assert [type(e).__name__ if e else None for e in outcomes] == [None, None, "IntegrityError", None]
    assert rows(tmp_path / "w.sqlite3") == [(1,), (2,), (3,)]  # seen by another connection
    writer.close()


def test_writes_under_one_key_coalesce_to_the_last(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    ran = []
    gate = threading.Event()
    writer.submit(lambda db: gate.wait(5))  # hold the thread so the next three queue together
    futures = [writer.submit(lambda db, n=n: ran.append(n), key="job") for n in (1, 2, 3)]
    gate.set()
    assert [f.result(5) for f in futures] == [None, None, None]
    assert ran == [3]
    writer.close()


def test_close_commits_what_is_queued_and_a_later_write_starts_again(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    for n in range(50):
        writer.submit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", (n,)))
    writer.close()
    assert len(rows(tmp_path / "w.sqlite3")) == 50
    writer.call(lambda db: db.execute("INSERT INTO t VALUES (50)"))
    assert len(rows(tmp_path / "w.sqlite3")) == 51
    writer.close()


EXIT_WITH_WRITES_QUEUED = """
import sys
from imagegen._sqlite import Writer, connect
writer = Writer(lambda: connect(sys.argv[1]), name="test")
writer.submit(lambda db: __import__("time").sleep(0.2))  # the rest queue behind it
for n in range(100):
    writer.submit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", (n,)))
if sys.argv[2] == "raise":
    raise RuntimeError("the program fails with writes still queued")
"""


@pytest.mark.parametrize("how", ["return", "raise"])
def test_writes_still_queued_at_exit_are_committed(tmp_path, how):
    path = tmp_path / "w.sqlite3"
    make_writer(path).close()
    proc = subprocess.run([sys.executable, "-c", EXIT_WITH_WRITES_QUEUED, str(path), how],
                          capture_output=True, timeout=60)
    assert proc.returncode == (0 if how == "return" else 1)
    assert len(rows(path)) == 100


async def test_a_cancelled_caller_does_not_cancel_its_write(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    gate = threading.Event()
    writer.submit(lambda db: gate.wait(5))
    task = asyncio.ensure_future(writer.acall(lambda db: db.execute("INSERT INTO t VALUES (7)")))
    await asyncio.sleep(0.01)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    writer.flush()
    assert rows(tmp_path / "w.sqlite3") == [(7,)]
    writer.close()


async def test_writes_queued_in_one_turn_of_the_loop_reach_the_thread_together(tmp_path):
    # One wake-up of the writer thread per turn of the loop, not one per write: every write a
    # turn queues lands in one transaction, even when the thread was free to take the first
    # one alone (the sleep gives it the GIL and the time to).
    writer = make_writer(tmp_path / "w.sqlite3")
    writer.call(lambda db: None)  # the thread is running and idle
    commits: list[str] = []
    writer.call(lambda db: db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None))
    commits.clear()
    first = writer.asubmit(lambda db: db.execute("INSERT INTO t VALUES (1)"))
    time.sleep(0.05)
    rest = [writer.asubmit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", (n,))) for n in range(2, 40)]
    await asyncio.gather(first, *rest)
    assert commits == ["COMMIT"]
    assert len(rows(tmp_path / "w.sqlite3")) == 39
    writer.close()


async def test_writes_queued_on_the_loop_go_before_a_later_blocking_write_and_at_close(tmp_path):
    writer = make_writer(tmp_path / "w.sqlite3")
    order: list[int] = []
    queued = writer.asubmit(lambda db: order.append(1))
    writer.call(lambda db: order.append(2))  # hands what the loop queued over first
    assert order == [1, 2] and not queued.done()  # (resolved on the loop, at its next turn)
    writer.asubmit(lambda db: db.execute("INSERT INTO t VALUES (3)"))
    writer.close()  # before the loop turns again: still written
    assert rows(tmp_path / "w.sqlite3") == [(3,)]
    await queued


# -- the disk cache ----------------------------------------------------------------------


def result(seed: int, *extra: int) -> ImageResult:
    images = [Image.from_bytes(synth_image(24, 24, "png", seed=s)) for s in (seed, *extra)]
    return ImageResult(images=images, provider="p", model="m")


def files(root: Path) -> set[str]:
    return {p.name for p in (root / "blobs").glob("*/*")}


def kept(root: Path) -> set[str]:
    """Every image the cache holds: files, and small images in the index."""
    db = sqlite3.connect(root / "index.sqlite3")
    inline = {sha for (sha,) in db.execute("SELECT sha FROM inline_images")}
    db.close()
    assert not inline & files(root)
    return inline | files(root)


@pytest.fixture(params=["files", "inline"])
def image_home(request, monkeypatch):
    """The test images are small: kept in the cache's index, or (limit 0) as files."""
    if request.param == "files":
        monkeypatch.setattr(_cache, "INLINE_MAX_BYTES", 0)
    return request.param


def check_books(cache: DiskCache) -> None:
    """The byte counter, the reference counts and the files all agree with the entries."""
    db = sqlite3.connect(cache.root / "index.sqlite3")
    size = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM entries").fetchone()[0]
    named = {sha for (images,) in db.execute("SELECT images FROM entries") for sha in __import__("json").loads(images)}
    refs = dict(db.execute("SELECT sha, refs FROM image_refs").fetchall())
    db.close()
    assert cache.stats()["bytes"] == size
    assert set(refs) == named == kept(cache.root)
    assert all(count > 0 for count in refs.values())


def test_eviction_keeps_the_cache_under_its_cap_in_batches(tmp_path, image_home):
    one = len(result(0).images[0].data)
    cap = one * 20
    cache = DiskCache(tmp_path / "c", max_bytes=cap)
    sizes = []
    for seed in range(60):
        cache.put(f"k{seed}", result(seed))
        sizes.append(cache.stats()["entries"])
        assert cache.stats()["bytes"] <= cap
    assert max(sizes) <= 20 and min(sizes[30:]) >= int(cap * LOW_WATER / one) - 2
    assert cache.get("k59") is not None and cache.get("k0") is None
    check_books(cache)


def test_eviction_deletes_only_files_no_kept_entry_names(tmp_path, image_home):
    shared = result(1)
    others = [result(seed) for seed in range(2, 10)]
    cap = len(shared.images[0].data) + sum(len(r.images[0].data) for r in others)  # all but one copy fit
    cache = DiskCache(tmp_path / "c", max_bytes=cap)
    cache.put("old", shared)
    for n, other in enumerate(others):
        cache.put(f"other{n}", other)
    assert cache.get("keeps-the-file") is None
    cache.put("keeps-the-file", shared)  # the same image under another key, and over the cap
    assert cache.get("old") is None  # the least recently used went...
    assert cache.get("keeps-the-file").images[0].data == shared.images[0].data  # ...not the file it shared
    check_books(cache)


def test_replacing_an_entry_keeps_the_books(tmp_path, image_home):
    cache = DiskCache(tmp_path / "c")
    cache.put("k", result(1, 2))
    cache.put("k", result(2, 3))  # image 2 stays named, image 1 is no one's now
    check_books(cache)
    assert cache.clear() == 1
    check_books(cache)


def test_a_cache_made_before_the_counts_gets_them_on_first_open(tmp_path, image_home):
    cache = DiskCache(tmp_path / "c")
    for seed in range(5):
        cache.put(f"k{seed}", result(seed, seed + 1))
    cache.close()
    db = sqlite3.connect(tmp_path / "c" / "index.sqlite3")
    db.execute("DROP TABLE image_refs")
    db.execute("DELETE FROM counters WHERE name = 'bytes'")
    db.commit()
    db.close()
    check_books(DiskCache(tmp_path / "c"))


def test_the_memory_cache_keeps_a_byte_count():
    results = [result(seed) for seed in range(12)]
    cap = sum(len(r.images[0].data) for r in results[:5])
    cache = MemoryCache(max_bytes=cap)
    for seed, res in enumerate(results):
        cache.put(f"k{seed % 8}", res)
        held = [cache.get(f"k{n}") for n in range(8)]
        kept = sum(len(r.images[0].data) for r in held if r is not None)
        assert cache.stats()["bytes"] == kept <= cap


def test_a_claim_is_completed_only_after_the_job_writes_queued_before_it(tmp_path):
    """A finished job is stored in the background; the claim on its key completes after it, so
    a process that claims the key next finds the job instead of paying again."""
    from imagegen import ImageRequest, Job
    from imagegen._jobstore import SqliteJobStore

    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    assert store.claim("order-1", "fp", "me").acquired
    gate = threading.Event()
    store._writer.submit(lambda db: gate.wait(10))  # the writer is busy: the job write queues
    job = Job(id="p:1", provider="p", native_id="1", status="succeeded",
              request=ImageRequest.build(prompt="a fox", idempotency_key="order-1"))
    written = store.submit_put(job)
    completing = threading.Thread(target=store.complete_claim, args=("order-1", "me", [job.id]))
    completing.start()
    completing.join(timeout=0.5)
    assert completing.is_alive() and not written.done()  # the claim waits behind the job's write
    gate.set()
    completing.join(timeout=10)
    other = SqliteJobStore(tmp_path / "jobs.sqlite3")
    assert other.claim("order-1", "fp", "next").acquired
    assert other.find("order-1").id == job.id
    store.close()
