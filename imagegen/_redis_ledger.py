"""The ledger in Redis, for fleets (``ledger.backend = "redis"``): the same charges, identities and
budgets as the SQLite ledger (``imagegen._ledger``), kept where every app server sees them."""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from ._errors import BudgetExceededError
from ._ledger import BudgetLimits, LedgerEntry, summarize
from ._storage import REDIS_TIMEOUT_S

__all__ = ["RedisLedger"]

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
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                                socket_connect_timeout=REDIS_TIMEOUT_S)
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
        return json.dumps({"id": uuid.uuid4().hex, "at": now, "usd": usd, "provider": provider, "model": model})

    def _adjust(self, pipe: Any, at: float, delta: float) -> None:
        if delta:
            for key in self._period_keys(at).values():
                pipe.incrbyfloat(key, delta)

    def settle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
               cached: bool, estimated: bool, key: str | None = None) -> None:
        held = json.loads(entry_id)
        self._upsert(held.get("id") or uuid.uuid5(uuid.NAMESPACE_OID, entry_id).hex, held,
                     provider=held["provider"], model=held["model"], usd=usd, credits=credits, job_id=job_id,
                     cached=cached, estimated=estimated, key=key)

    def release(self, entry_id: str) -> None:
        held = json.loads(entry_id)
        pipe = self._redis.pipeline()
        self._adjust(pipe, held["at"], -held["usd"])
        pipe.execute()

    def record(self, *, provider: str, model: str | None, usd: float, credits: float | None,
               job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
               entry_id: str | None = None, at: float | None = None, reservation: str | None = None) -> str:
        held = json.loads(reservation) if reservation else {"at": at or time.time(), "usd": 0.0}
        entry_id = str(held.get("id") or entry_id or uuid.uuid4().hex)
        self._upsert(entry_id, held, provider=provider, model=model, usd=usd, credits=credits, job_id=job_id,
                     cached=cached, estimated=estimated, key=key)
        return entry_id

    def void(self, *, job_id: str, key: str | None = None) -> None:
        def change(pipe: Any) -> None:
            known = self._known(pipe, job_id, key)
            if known is None:
                return
            pipe.multi()
            self._adjust(pipe, known.at, -known.usd)
            self._drop(pipe, known)
        self._redis.transaction(change, self._job_index(job_id))

    # An entry lives as a member of the ``entries`` sorted set (its JSON), under ``entry:<id>``
    # (that JSON again, to find the member to replace) and, with a job id, in ``job:<job id>``
    # (idempotency key or "" -> entry id). Changes run in WATCH transactions.

    def _job_index(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def _entry(self, pipe: Any, entry_id: str) -> LedgerEntry | None:
        raw = pipe.get(f"{self.prefix}entry:{entry_id}")
        return None if raw is None else LedgerEntry(**json.loads(raw))

    def _known(self, pipe: Any, job_id: str, key: str | None) -> LedgerEntry | None:
        index = {k.decode(): v.decode() for k, v in pipe.hgetall(self._job_index(job_id)).items()}
        for stored_key, entry_id in sorted(index.items()):
            if key is None or stored_key in ("", key):
                return self._entry(pipe, entry_id)
        return None

    def _drop(self, pipe: Any, entry: LedgerEntry) -> None:
        pipe.zrem(self.prefix + "entries", json.dumps(entry.__dict__))
        pipe.delete(f"{self.prefix}entry:{entry.id}")
        if entry.job_id is not None and not entry.cached:
            pipe.hdel(self._job_index(entry.job_id), entry.key or "")

    def _put(self, pipe: Any, entry: LedgerEntry) -> None:
        member = json.dumps(entry.__dict__)
        pipe.zadd(self.prefix + "entries", {member: entry.at})
        pipe.set(f"{self.prefix}entry:{entry.id}", member)
        if entry.job_id is not None and not entry.cached:
            pipe.hset(self._job_index(entry.job_id), entry.key or "", entry.id)

    def _upsert(self, entry_id: str, held: dict[str, Any], **fields: Any) -> None:
        """Make ``entry_id`` (a reservation of ``held["usd"]``, or nothing) the charge with this identity,
        or update the charge already recorded with it; the period counters follow."""
        job_id, cached = fields["job_id"], fields["cached"]
        watched = [f"{self.prefix}entry:{entry_id}"] + ([self._job_index(job_id)] if job_id and not cached else [])

        def change(pipe: Any) -> None:
            mine = self._entry(pipe, entry_id)
            counted, at = (mine.usd, mine.at) if mine is not None else (held["usd"], held["at"])
            known = self._known(pipe, job_id, fields["key"]) if job_id and not cached else None
            pipe.multi()
            if known is not None and known.id != entry_id:
                self._adjust(pipe, at, -counted)  # ours merges into the charge already recorded
                if mine is not None:
                    self._drop(pipe, mine)
                if fields["estimated"] and not known.estimated:
                    return  # a reported cost is never replaced by an estimate
                mine, at, counted = known, known.at, known.usd
            if mine is not None:
                self._drop(pipe, mine)
            entry = LedgerEntry(id=entry_id if known is None or known.id == entry_id else known.id, at=at,
                                **{**fields, "key": fields["key"] or (mine.key if mine else None)})
            self._adjust(pipe, at, entry.usd - counted)
            self._put(pipe, entry)
        self._redis.transaction(change, *watched)

    # Network round trips: the awaiting forms run them on a worker thread.
    async def areserve(self, *, provider: str, model: str | None, usd: float, limits: BudgetLimits) -> str:
        return await asyncio.to_thread(functools.partial(self.reserve, provider=provider, model=model, usd=usd,
                                                         limits=limits))

    async def asettle(self, entry_id: str, *, usd: float, credits: float | None, job_id: str | None,
                      cached: bool, estimated: bool, key: str | None = None) -> None:
        await asyncio.to_thread(functools.partial(self.settle, entry_id, usd=usd, credits=credits, job_id=job_id,
                                                  cached=cached, estimated=estimated, key=key))

    async def arelease(self, entry_id: str) -> None:
        await asyncio.to_thread(self.release, entry_id)

    async def arecord(self, *, provider: str, model: str | None, usd: float, credits: float | None,
                      job_id: str | None, cached: bool, estimated: bool, key: str | None = None,
                      entry_id: str | None = None) -> str:
        return await asyncio.to_thread(functools.partial(
            self.record, provider=provider, model=model, usd=usd, credits=credits, job_id=job_id, cached=cached,
            estimated=estimated, key=key, entry_id=entry_id))

    def spent_usd(self, *, since: float = 0.0) -> float:
        """What the budgets count: the total counter (or, with ``since``, the entries since then)."""
        if since:
            return self.total_usd(since=since)
        return round(float(self._redis.get(f"{self.prefix}spent:total") or 0.0), 9)

    def entries(self, *, since: float | None = None) -> list[LedgerEntry]:
        raw = self._redis.zrangebyscore(self.prefix + "entries", since or 0.0, "+inf")
        return [LedgerEntry(**json.loads(item)) for item in raw]

    def total_usd(self, *, since: float | None = None) -> float:
        return round(sum(e.usd for e in self.entries(since=since)), 9)

    def summary(self, *, by: str = "day", since: float | None = None) -> list[dict[str, Any]]:
        return summarize(self.entries(since=since), by=by)
