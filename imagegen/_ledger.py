"""The cost ledger and budgets.

Every charged call is recorded — time, provider, model, job id, USD, credits, cached
or not, estimated or reported. Budgets (daily, monthly, total, in USD) are enforced
before any network call by *reserving* the call's estimate in the same store, in one
transaction with the check; the reservation is settled to the actual cost after the
call, or released if nothing was charged. So concurrent calls — in one process or in
many sharing the SQLite file — cannot overspend together.

A reservation left behind by a crashed process stops counting after an hour.

A charge's identity is its job id *and* the idempotency key of the request that paid for it:
recording the same charge again (a resumed job finishing, an estimate settled to the reported
cost, a journal replayed twice) updates it, while two real charges that happen to share a job
id (a vendor restarting its ids) stay two. An unknown key (``None``) matches any key of that job,
so a charge recorded without one is still found. Charges without a job id are never merged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ._errors import BudgetExceededError
from ._sqlite import ThreadConnections, Writer, connect

__all__ = ["BudgetLimits", "Ledger", "LedgerEntry", "RedisLedger", "summarize"]

STALE_RESERVATION_S = 3600.0


@dataclass(frozen=True)
class BudgetLimits:
    daily_usd: float | None = None
    monthly_usd: float | None = None
    total_usd: float | None = None

    def windows(self, now: float) -> list[tuple[str, float, float]]:
        """(name, start timestamp, limit) for every configured limit; periods are UTC."""
        moment = datetime.fromtimestamp(now, UTC)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        month = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()
        candidates = [("daily", day, self.daily_usd), ("monthly", month, self.monthly_usd),
                      ("total", 0.0, self.total_usd)]
        return [(name, start, limit) for name, start, limit in candidates if limit is not None]


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    at: float
    provider: str
    model: str | None
    job_id: str | None
    usd: float
    credits: float | None
    cached: bool
    estimated: bool
    #: The idempotency key of the request this charge paid for (part of its identity).
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
                "provider": self.provider, "model": self.model, "job_id": self.job_id, "usd": self.usd,
                "credits": self.credits, "cached": self.cached, "estimated": self.estimated,
                "idempotency_key": self.key}


_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY, at REAL NOT NULL, state TEXT NOT NULL, provider TEXT NOT NULL, model TEXT,
    job_id TEXT, usd REAL NOT NULL, credits REAL, cached INTEGER NOT NULL, estimated INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_at ON ledger(at)",
    "CREATE INDEX IF NOT EXISTS ledger_job ON ledger(job_id)",
    # Live reservations only: finding the ones to expire reads no settled row.
    "CREATE INDEX IF NOT EXISTS ledger_reserved ON ledger(at) WHERE state = 'reserved'",
]
#: Spend per budget period ("day:2025-01-31", "month:2025-01", "total"): settled charges plus
#: live reservations, kept in the same transaction as every change to them, so a budget check
#: reads three rows however long the ledger is.
_TOTALS = "CREATE TABLE ledger_totals (period TEXT PRIMARY KEY, usd REAL NOT NULL)"
#: A ledger written before the totals existed: sum it once, and expire stale reservations.
_FILL_TOTALS = """
INSERT INTO ledger_totals (period, usd)
SELECT period, SUM(usd) FROM (
    SELECT 'day:' || strftime('%Y-%m-%d', at, 'unixepoch') AS period, usd FROM ledger WHERE state = 'settled'
    UNION ALL SELECT 'month:' || strftime('%Y-%m', at, 'unixepoch'), usd FROM ledger WHERE state = 'settled'
    UNION ALL SELECT 'total', usd FROM ledger WHERE state = 'settled'
) GROUP BY period
"""
_ADD = "INSERT INTO ledger_totals VALUES (?, ?) ON CONFLICT(period) DO UPDATE SET usd = usd + excluded.usd"
#: The settled provider charge with this identity (job id, idempotency key), if any.
_SAME_CHARGE = "job_id = ?1 AND state = 'settled' AND cached = 0 AND (idem_key IS NULL OR ?2 IS NULL OR idem_key = ?2)"
_CHARGED = f"SELECT id, at, usd, estimated FROM ledger WHERE {_SAME_CHARGE} ORDER BY at LIMIT 1"
_COLUMNS = "id, at, state, provider, model, job_id, usd, credits, cached, estimated, idem_key"
#: A row that holds nothing yet (a no-op when the id exists: a replayed record, a reservation).
_NEW_ROW = f"INSERT OR IGNORE INTO ledger ({_COLUMNS}) VALUES (?, ?, 'new', ?, ?, NULL, 0, NULL, 0, 1, NULL)"
_PERIOD_OF = {"daily": 0, "monthly": 1, "total": 2}
T = TypeVar("T")
#: A write for the ledger's writer thread: run inside its transaction, on its connection.
_Op = Callable[[sqlite3.Connection], T]


def _periods(at: float) -> tuple[str, str, str]:
    """The budget periods (UTC) a charge made at ``at`` counts in."""
    moment = datetime.fromtimestamp(at, UTC)
    return f"day:{moment:%Y-%m-%d}", f"month:{moment:%Y-%m}", "total"


def _add(db: sqlite3.Connection, at: float, usd: float) -> None:
    if usd:
        db.executemany(_ADD, [(period, usd) for period in _periods(at)])


def _over_budget(name: str, usd: float, spent: float, limit: float) -> BudgetExceededError:
    return BudgetExceededError(
        f"this call's estimated ${usd:.4f} would take {name} spend to ${spent + usd:.4f}, "
        f"over the {name} budget of ${limit:.2f}; raise budget.{name}_usd or wait",
        limit_usd=limit, spent_usd=spent, estimate_usd=usd)


class Ledger:
    """A SQLite ledger (``":memory:"`` for a throwaway one), shared by every process using the file.

    Budget checks read maintained per-period totals (O(1) however long the ledger grows).
    Every write goes through the ledger's ``Writer`` thread, batched; the ``a``-prefixed
    twins (``areserve``, ``asettle``, ...) await it without blocking the event loop, the
    plain ones wait for it.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            from ._jobstore import default_data_dir

            path = default_data_dir() / "ledger.sqlite3"
        self.path = str(path)
        self._shared: sqlite3.Connection | None = None
        if self.path == ":memory:":  # one connection, or each thread would see its own empty ledger
            self._shared = connect(":memory:")
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._writer = Writer(self._db if self._shared is not None else self._connections.get, name="ledger")
        self._prepare(self._db())

    def _db(self) -> sqlite3.Connection:
        return self._shared if self._shared is not None else self._connections.get()

    def _read(self, query: str, args: tuple[Any, ...] = ()) -> list[Any]:
        if self._shared is not None:  # the writer's connection: read on its thread
            return self._writer.call(lambda db: db.execute(query, args).fetchall())
        return self._db().execute(query, args).fetchall()

    @staticmethod
    def _prepare(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            if "idem_key" not in {row[1] for row in db.execute("PRAGMA table_info(ledger)")}:
                db.execute("ALTER TABLE ledger ADD COLUMN idem_key TEXT")  # a ledger written before keys
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ledger_totals'").fetchone() is None:
                db.execute(_TOTALS)
                db.execute("UPDATE ledger SET state = 'expired' WHERE state = 'reserved' AND at < ?",
                           (time.time() - STALE_RESERVATION_S,))
                db.execute(_FILL_TOTALS)
                for at, usd in db.execute("SELECT at, usd FROM ledger WHERE state = 'reserved'").fetchall():
                    _add(db, at, usd)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Commit queued writes and stop the writer thread (the ledger stays usable)."""
        self._writer.close()

    # -- writes: each an op for the writer, with a waiting and an awaiting form --------------

    def reserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> str:
        """Hold ``usd`` against every budget, or raise BudgetExceededError; returns the reservation id."""
        return self._writer.call(self._reserving(provider, model, usd, limits))

    async def areserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> str:
        return await self._writer.acall(self._reserving(provider, model, usd, limits))

    def asubmit_reserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits,
                        ) -> asyncio.Future[str]:
        """``areserve`` as the writer's own future (``Writer.asubmit``): queued now, made even if
        nobody waits for it."""
        return self._writer.asubmit(self._reserving(provider, model, usd, limits))

    def settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
               cached: bool, estimated: bool, key: str | None = None) -> None:
        """Turn a reservation into the charge that happened; settling it again updates it (an
        estimate becoming the reported cost). A charge already recorded with the same identity
        is updated instead, and the reservation dropped."""
        self._writer.call(self._settling(entry_id, usd, credits, job_id, cached, estimated, key))

    async def asettle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
                      cached: bool, estimated: bool, key: str | None = None) -> None:
        await self._writer.acall(self._settling(entry_id, usd, credits, job_id, cached, estimated, key))

    def submit_settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
                      cached: bool, estimated: bool, key: str | None = None) -> concurrent.futures.Future[None]:
        """Queue the settlement and return at once (the future resolves once it is committed)."""
        return self._writer.submit(self._settling(entry_id, usd, credits, job_id, cached, estimated, key))

    def asubmit_settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
                       cached: bool, estimated: bool, key: str | None = None) -> asyncio.Future[None]:
        """``submit_settle`` for the running event loop (``Writer.asubmit``)."""
        return self._writer.asubmit(self._settling(entry_id, usd, credits, job_id, cached, estimated, key))

    def release(self, entry_id: str) -> None:
        """Drop a reservation for a call that charged nothing."""
        self._writer.call(lambda db: self._release(db, entry_id))

    async def arelease(self, entry_id: str) -> None:
        await self._writer.acall(lambda db: self._release(db, entry_id))

    def submit_release(self, entry_id: str) -> concurrent.futures.Future[None]:
        """Queue the release and return at once (it is made even if nobody waits for it)."""
        return self._writer.submit(lambda db: self._release(db, entry_id))

    def record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
               job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
               entry_id: str | None = None, at: float | None = None, reservation: str | None = None) -> str:
        """Record a charge (or a zero-cost cache hit); returns its id.

        ``entry_id`` makes recording idempotent for charges without a job id (the journal's
        replay): a second record with the same id updates the first. ``reservation`` names the
        reservation the charge was made under, if any (it is settled, not counted twice).
        """
        op, entry_id = self._recording(provider, model, usd, credits, job_id, cached, estimated, key,
                                       reservation or entry_id, at)
        self._writer.call(op)
        return entry_id

    async def arecord(self, *, provider: str, model: str | None, usd: float, credits: float | None,
                      job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
                      entry_id: str | None = None) -> str:
        op, entry_id = self._recording(provider, model, usd, credits, job_id, cached, estimated, key, entry_id, None)
        await self._writer.acall(op)
        return entry_id

    def submit_record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
                      job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
                      entry_id: str | None = None) -> concurrent.futures.Future[None]:
        """Queue the record and return at once (the future resolves once it is committed)."""
        op, _ = self._recording(provider, model, usd, credits, job_id, cached, estimated, key, entry_id, None)
        return self._writer.submit(op)

    def asubmit_record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
                       job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
                       entry_id: str | None = None) -> asyncio.Future[None]:
        """``submit_record`` for the running event loop (``Writer.asubmit``)."""
        op, _ = self._recording(provider, model, usd, credits, job_id, cached, estimated, key, entry_id, None)
        return self._writer.asubmit(op)

    def void(self, *, job_id: str, key: str | None = None) -> None:
        """Cancel the charge recorded for a job the vendor did not bill after all (it failed)."""
        self._writer.call(functools.partial(self._voiding, job_id, key))

    def submit_void(self, *, job_id: str, key: str | None = None) -> concurrent.futures.Future[None]:
        return self._writer.submit(functools.partial(self._voiding, job_id, key))

    def asubmit_void(self, *, job_id: str, key: str | None = None) -> asyncio.Future[None]:
        return self._writer.asubmit(functools.partial(self._voiding, job_id, key))

    @staticmethod
    def _voiding(job_id: str, key: str | None, db: sqlite3.Connection) -> None:
        for entry_id, at, usd, _ in db.execute(_CHARGED.replace(" LIMIT 1", ""), (job_id, key)).fetchall():
            db.execute("UPDATE ledger SET state = 'void' WHERE id = ?", (entry_id,))
            _add(db, at, -usd)

    def _reserving(self, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> _Op[str]:
        def op(db: sqlite3.Connection) -> str:
            now = time.time()
            self._expire_stale(db, now)
            periods = _periods(now)
            for name, _, limit in limits.windows(now):
                row = db.execute("SELECT usd FROM ledger_totals WHERE period = ?",
                                 (periods[_PERIOD_OF[name]],)).fetchone()
                spent = float(row[0]) if row else 0.0
                if spent + usd > limit + 1e-12:
                    raise _over_budget(name, usd, spent, limit)
            entry_id = uuid.uuid4().hex
            db.execute(f"INSERT INTO ledger ({_COLUMNS}) VALUES (?, ?, 'reserved', ?, ?, NULL, ?, NULL, 0, 1, NULL)",
                       (entry_id, now, provider, model, usd))
            _add(db, now, usd)
            return entry_id
        return op

    @staticmethod
    def _expire_stale(db: sqlite3.Connection, now: float) -> None:
        """A reservation left by a crashed process stops counting after an hour."""
        stale = db.execute("SELECT id, at, usd FROM ledger WHERE state = 'reserved' AND at < ?",
                           (now - STALE_RESERVATION_S,)).fetchall()
        for entry_id, at, usd in stale:
            db.execute("UPDATE ledger SET state = 'expired' WHERE id = ?", (entry_id,))
            _add(db, at, -usd)

    def _settling(self, entry_id: str, usd: float, credits: float | None, job_id: str | None, cached: bool,
                  estimated: bool, key: str | None) -> _Op[None]:
        def op(db: sqlite3.Connection) -> None:
            _write_charge(db, entry_id, usd=usd, credits=credits, job_id=job_id, cached=cached, estimated=estimated,
                          key=key)
        return op

    @staticmethod
    def _release(db: sqlite3.Connection, entry_id: str) -> None:
        row = db.execute("SELECT state, at, usd FROM ledger WHERE id = ? AND state IN ('reserved', 'expired')",
                         (entry_id,)).fetchone()
        if row is not None:
            db.execute("DELETE FROM ledger WHERE id = ?", (entry_id,))
            if row[0] == "reserved":
                _add(db, row[1], -row[2])

    @staticmethod
    def _recording(provider: str, model: str | None, usd: float, credits: float | None, job_id: str | None,
                   cached: bool, estimated: bool, key: str | None, entry_id: str | None,
                   at: float | None) -> tuple[_Op[None], str]:
        entry_id = entry_id or uuid.uuid4().hex

        def op(db: sqlite3.Connection) -> None:
            # A row of our own first (a no-op when it exists: a replayed record, a reservation),
            # holding nothing yet; then it becomes, or merges into, the charge.
            db.execute(_NEW_ROW, (entry_id, at or time.time(), provider, model))
            _write_charge(db, entry_id, usd=usd, credits=credits, job_id=job_id, cached=cached, estimated=estimated,
                          key=key)
        return op, entry_id

    # -- reads ---------------------------------------------------------------------------

    def period_totals(self) -> dict[str, float]:
        """The maintained spend per budget period (settled charges plus live reservations)."""
        return {str(period): float(usd) for period, usd in self._read("SELECT period, usd FROM ledger_totals")}

    def entries(self, *, since: float | None = None) -> list[LedgerEntry]:
        rows = self._read(
            "SELECT id, at, provider, model, job_id, usd, credits, cached, estimated, idem_key FROM ledger "
            "WHERE state = 'settled' AND at >= ? ORDER BY at", (since or 0.0,))
        return [LedgerEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8]), r[9]) for r in rows]

    def spent_usd(self, *, since: float = 0.0) -> float:
        """What the budgets count: settled charges and live reservations (the total, or since ``since``)."""
        if not since:
            return round(self.period_totals().get("total", 0.0), 9)
        rows = self._read("SELECT COALESCE(SUM(usd), 0) FROM ledger WHERE at >= ? AND state IN ('settled', "
                          "'reserved')", (since,))
        return round(float(rows[0][0]), 9)

    def total_usd(self, *, since: float | None = None) -> float:
        return round(sum(e.usd for e in self.entries(since=since)), 9)

    def summary(self, *, by: str = "day", since: float | None = None) -> list[dict[str, Any]]:
        """Spend grouped by ``day``, ``provider`` or ``model`` (with calls, USD, credits, cache hits)."""
        return summarize(self.entries(since=since), by=by)


def _write_charge(db: sqlite3.Connection, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
                  cached: bool, estimated: bool, key: str | None) -> None:
    """Make row ``entry_id`` (a reservation, a charge of ours, or a new row) the charge with this
    identity, or fold it into the charge already recorded; the period totals follow."""
    row = db.execute("SELECT state, at, usd FROM ledger WHERE id = ?", (entry_id,)).fetchone()
    if row is None:
        return
    state, at, held = row
    counted = held if state in ("reserved", "settled") else 0.0
    known = None if job_id is None or cached else db.execute(_CHARGED, (job_id, key)).fetchone()
    if known is not None and known[0] != entry_id:
        db.execute("DELETE FROM ledger WHERE id = ?", (entry_id,))  # ours merges into the one recorded
        _add(db, at, -counted)
        if estimated and not known[3]:
            return  # a reported cost is never replaced by an estimate
        entry_id, at, counted = known[0], known[1], known[2]
    db.execute("UPDATE ledger SET state = 'settled', usd = ?, credits = ?, job_id = ?, cached = ?, estimated = ?, "
               "idem_key = COALESCE(?, idem_key) WHERE id = ?",
               (usd, credits, job_id, int(cached), int(estimated), key, entry_id))
    _add(db, at, usd - counted)


def summarize(entries: list[LedgerEntry], *, by: str = "day") -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for entry in entries:
        day = datetime.fromtimestamp(entry.at, UTC).date().isoformat()
        key = {"day": (day,), "provider": (entry.provider,), "model": (entry.provider, entry.model or "-")}[by]
        row = groups.setdefault(key, {"key": "/".join(key), "calls": 0, "usd": 0.0, "credits": 0.0,
                                      "cached": 0, "estimated": 0})
        row["calls"] += 1
        row["usd"] = round(row["usd"] + entry.usd, 9)
        row["credits"] = round(row["credits"] + (entry.credits or 0.0), 9)
        row["cached"] += int(entry.cached)
        row["estimated"] += int(entry.estimated)
    return [groups[k] for k in sorted(groups)]


# The Redis ledger lives in its own module; it is imported here so both are found in one place.
from ._redis_ledger import RedisLedger  # noqa: E402
