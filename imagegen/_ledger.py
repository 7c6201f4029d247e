"""The cost ledger and budgets.

Every charged call is recorded — time, provider, model, job id, USD, credits, cached
or not, estimated or reported. Budgets (daily, monthly, total, in USD) are enforced
before any network call by *reserving* the call's estimate in the same store, in one
transaction with the check; the reservation is settled to the actual cost after the
call, or released if nothing was charged. So concurrent calls — in one process or in
many sharing the SQLite file — cannot overspend together.

A reservation left behind by a crashed process stops counting after an hour.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._errors import BudgetExceededError
from ._sqlite import ThreadConnections

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

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
                "provider": self.provider, "model": self.model, "job_id": self.job_id, "usd": self.usd,
                "credits": self.credits, "cached": self.cached, "estimated": self.estimated}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY, at REAL NOT NULL, state TEXT NOT NULL, provider TEXT NOT NULL, model TEXT,
    job_id TEXT, usd REAL NOT NULL, credits REAL, cached INTEGER NOT NULL, estimated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger(at);
CREATE INDEX IF NOT EXISTS ledger_job ON ledger(job_id);
"""
#: A job's settled provider charge, if any: a resumed job finishing again is not charged twice.
_CHARGED = "SELECT 1 FROM ledger WHERE job_id = ? AND state = 'settled' AND cached = 0"


class Ledger:
    """A SQLite ledger (``":memory:"`` for a throwaway one), shared by every process using the file."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            from ._jobstore import default_data_dir

            path = default_data_dir() / "ledger.sqlite3"
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._shared: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        if self.path == ":memory:":  # one connection, or each thread would see its own empty ledger
            if self._shared is None:
                self._shared = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            return self._shared
        return self._connections.get()

    def reserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> str:
        """Hold ``usd`` against every budget, or raise BudgetExceededError; returns the reservation id."""
        now = time.time()
        entry_id = uuid.uuid4().hex
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                for name, start, limit in limits.windows(now):
                    spent = self._spent_since(start, now)
                    if spent + usd > limit + 1e-12:
                        raise BudgetExceededError(
                            f"this call's estimated ${usd:.4f} would take {name} spend to ${spent + usd:.4f}, "
                            f"over the {name} budget of ${limit:.2f}; raise budget.{name}_usd or wait",
                            limit_usd=limit, spent_usd=spent, estimate_usd=usd)
                db.execute("INSERT INTO ledger VALUES (?, ?, 'reserved', ?, ?, NULL, ?, NULL, 0, 1)",
                           (entry_id, now, provider, model, usd))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return entry_id

    def _spent_since(self, start: float, now: float) -> float:
        row = self._db().execute(
            "SELECT COALESCE(SUM(usd), 0) FROM ledger WHERE at >= ? AND (state = 'settled' OR "
            "(state = 'reserved' AND at >= ?))", (start, now - STALE_RESERVATION_S)).fetchone()
        return float(row[0])

    def _already_charged(self, job_id: str | None, cached: bool) -> bool:
        """A resumed job finishing again must not be charged twice."""
        if job_id is None or cached:
            return False
        return self._db().execute(_CHARGED, (job_id,)).fetchone() is not None

    def settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
               cached: bool, estimated: bool) -> None:
        """Turn a reservation into the charge that actually happened."""
        with self._lock:
            if self._already_charged(job_id, cached):
                self.release(entry_id)
                return
            self._db().execute(
                "UPDATE ledger SET state = 'settled', usd = ?, credits = ?, job_id = ?, cached = ?, estimated = ? "
                "WHERE id = ?", (usd, credits, job_id, int(cached), int(estimated), entry_id))

    def release(self, entry_id: str) -> None:
        """Drop a reservation for a call that charged nothing."""
        with self._lock:
            self._db().execute("DELETE FROM ledger WHERE id = ? AND state = 'reserved'", (entry_id,))

    def record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
               job_id: str | None, cached: bool, estimated: bool) -> None:
        """Record a charge (or a zero-cost cache hit) that needed no reservation."""
        row = (uuid.uuid4().hex, time.time(), provider, model, job_id, usd, credits, int(cached), int(estimated))
        with self._lock:
            if job_id is None or cached:
                self._db().execute("INSERT INTO ledger VALUES (?, ?, 'settled', ?, ?, ?, ?, ?, ?, ?)", row)
            else:  # one statement: the check and the insert
                self._db().execute("INSERT INTO ledger SELECT ?, ?, 'settled', ?, ?, ?, ?, ?, ?, ? "
                                   f"WHERE NOT EXISTS ({_CHARGED})", (*row, job_id))

    def entries(self, *, since: float | None = None) -> list[LedgerEntry]:
        rows = self._db().execute(
            "SELECT id, at, provider, model, job_id, usd, credits, cached, estimated FROM ledger "
            "WHERE state = 'settled' AND at >= ? ORDER BY at", (since or 0.0,)).fetchall()
        return [LedgerEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]), bool(r[8])) for r in rows]

    def total_usd(self, *, since: float | None = None) -> float:
        return round(sum(e.usd for e in self.entries(since=since)), 9)

    def summary(self, *, by: str = "day", since: float | None = None) -> list[dict[str, Any]]:
        """Spend grouped by ``day``, ``provider`` or ``model`` (with calls, USD, credits, cache hits)."""
        return summarize(self.entries(since=since), by=by)


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


_RESERVE_LUA = """
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('GET', key) or '0')
  if spent + tonumber(ARGV[1]) > tonumber(ARGV[i + 1]) + 1e-12 then
    return {i, tostring(spent)}
  end
end
for _, key in ipairs(KEYS) do redis.call('INCRBYFLOAT', key, ARGV[1]) end
return {0, '0'}
"""


class RedisLedger:
    """The ledger in Redis, for fleets: entries in a sorted set, spend per period in counters.

    ``reserve`` checks and adds to every period counter in one Lua script, so app
    servers sharing the Redis cannot overspend a budget together. A reservation
    left by a crashed process stays counted until its period ends (unlike SQLite's
    one-hour expiry): a fleet errs on the side of not overspending.
    """

    def __init__(self, url: str, *, prefix: str = "imagegen:ledger:") -> None:
        import redis  # the `redis` extra; imported only when configured

        # Any: redis-py types every reply as a union of all reply shapes (bytes | str | list...).
        self._redis: Any = redis.Redis.from_url(url)
        self._reserve = self._redis.register_script(_RESERVE_LUA)
        self.prefix = prefix

    def _period_keys(self, at: float) -> dict[str, str]:
        moment = datetime.fromtimestamp(at, UTC)
        return {"daily": f"{self.prefix}spent:day:{moment:%Y-%m-%d}",
                "monthly": f"{self.prefix}spent:month:{moment:%Y-%m}", "total": f"{self.prefix}spent:total"}

    def reserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> str:
        now = time.time()
        windows = limits.windows(now)
        keys = self._period_keys(now)
        failed, spent = self._reserve(keys=[keys[name] for name, _, _ in windows],
                                      args=[usd, *[limit for _, _, limit in windows]])
        if failed:
            name, _, limit = windows[int(failed) - 1]
            spent = float(spent)
            raise BudgetExceededError(
                f"this call's estimated ${usd:.4f} would take {name} spend to ${spent + usd:.4f}, over the "
                f"{name} budget of ${limit:.2f}; raise budget.{name}_usd or wait",
                limit_usd=limit, spent_usd=spent, estimate_usd=usd)
        return json.dumps({"at": now, "usd": usd, "provider": provider, "model": model})

    def _adjust(self, at: float, delta: float) -> None:
        pipe = self._redis.pipeline()
        for key in self._period_keys(at).values():
            pipe.incrbyfloat(key, delta)
        pipe.execute()

    def settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
               cached: bool, estimated: bool) -> None:
        held = json.loads(entry_id)
        self._adjust(held["at"], usd - held["usd"])
        self._append(provider=held["provider"], model=held["model"], usd=usd, credits=credits, job_id=job_id,
                     cached=cached, estimated=estimated)

    def release(self, entry_id: str) -> None:
        held = json.loads(entry_id)
        self._adjust(held["at"], -held["usd"])

    def record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
               job_id: str | None, cached: bool, estimated: bool) -> None:
        if usd:
            self._adjust(time.time(), usd)
        self._append(provider=provider, model=model, usd=usd, credits=credits, job_id=job_id, cached=cached,
                     estimated=estimated)

    def _append(self, **fields: Any) -> None:
        entry = LedgerEntry(id=uuid.uuid4().hex, at=time.time(), **fields)
        self._redis.zadd(self.prefix + "entries", {json.dumps(entry.__dict__): entry.at})

    def entries(self, *, since: float | None = None) -> list[LedgerEntry]:
        raw = self._redis.zrangebyscore(self.prefix + "entries", since or 0.0, "+inf")
        return [LedgerEntry(**json.loads(item)) for item in raw]

    def total_usd(self, *, since: float | None = None) -> float:
        return round(sum(e.usd for e in self.entries(since=since)), 9)

    def summary(self, *, by: str = "day", since: float | None = None) -> list[dict[str, Any]]:
        return summarize(self.entries(since=since), by=by)
