"""Idempotency claims: at most one process at a time runs the request an idempotency key names.

Gemini and nano-banana2 take no idempotency key, so nothing on the vendor's side stops two
processes given the same logical request from paying for it twice. Before it submits, a
process therefore *claims* the request's key in the job store it shares with the others. A
claim is a row (SQLite), a hash (Redis) or a dict entry (memory) holding the request's
fingerprint, the owner and a lease.

The API, the same on every job-store backend (``MemoryJobStore``, ``SqliteJobStore``,
``RedisJobStore``); callers on other machines (a fleet's workers) use it as is::

    claim = store.claim(key, fingerprint, owner, lease_s=30.0)
    #   -> Claim(state="acquired"): you hold the key until the lease ends; submit.
    #   -> Claim(state="held"): another owner (``claim.holder``) holds a live lease; wait and
    #      claim again (``claim.lease_left_s`` says how long it may still hold it), or, knowing
    #      that holder is dead, ``store.claim(..., take_over=claim.holder)``.
    #   raises IdempotencyConflictError: the key was claimed for a request with another
    #      fingerprint (``request_fingerprint``); nothing may be sent.
    store.renew_claim(key, owner, lease_s=30.0)      # -> False when the lease was lost
    store.complete_claim(key, owner, job_ids)        # the outcome's jobs are in the store
    store.release_claim(key, owner)                  # nothing was paid; others may try

- ``owner`` is any string unique to one attempt at the request, so two calls with the same key
  in one process exclude each other too. imagegen's are ``"<host>/<pid>/<uuid>"`` (``new_owner``):
  a process that finds a key held by a dead process on its own host takes it over at once
  (``holder_is_dead``) instead of waiting out the lease of a process killed mid-call.
- A claim is acquired when nobody holds it, when its holder's lease has run out (the holder
  crashed, or stopped renewing), or when it was completed or released. Completing or releasing
  drops the lease and keeps the fingerprint: the key stays bound to its request parameters
  for as long as the job store keeps the claim (``prune`` drops claims with old jobs).
- What a completed claim *means* lives in the job store: the jobs stored under the key
  (``find``). A new holder looks there first and resumes or returns them instead of paying;
  ``Claim.job_ids`` lists the jobs the last holder completed with.
- Leases are timed by the store: wall-clock time on one machine for SQLite and memory, the
  Redis server's own clock for Redis (no clock skew between machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._errors import IdempotencyConflictError, JobTimeoutError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import AsyncIterator

    from ._models import ImageRequest

__all__ = [
    "DEFAULT_LEASE_S",
    "Claim",
    "MemoryClaims",
    "RedisClaims",
    "SqliteClaims",
    "current_claim",
    "held_claim",
    "holder_is_dead",
    "new_owner",
    "request_fingerprint",
]

log = logging.getLogger("imagegen")

#: How long a claim stays held without being renewed; holders renew every third of it.
DEFAULT_LEASE_S = 30.0
#: Request fields that shape how a call is made, not what is asked for.
_NOT_FINGERPRINTED = {"idempotency_key", "timeout", "cache", "images", "mask"}


@dataclass(frozen=True)
class Claim:
    """The answer to ``claim``: ``acquired`` (yours until the lease ends) or ``held`` (someone else's)."""

    key: str
    state: Literal["acquired", "held"]
    fingerprint: str
    #: Seconds the current lease has left (yours when acquired, the holder's when held).
    lease_left_s: float
    #: The jobs the last completed holder stored for this key (empty when none completed).
    job_ids: tuple[str, ...] = field(default=())
    #: Who holds the lease (the caller itself when acquired).
    holder: str | None = None

    @property
    def acquired(self) -> bool:
        return self.state == "acquired"


def request_fingerprint(request: ImageRequest) -> str:
    """A hash of everything a request asks for (input images by their content hash).

    Leaves out how the call is made (``timeout``, ``cache``) and the key itself, so a retry
    with a longer timeout is the same request, and a different prompt, size, provider, image
    or option is not.
    """
    fields = request.model_dump(mode="json", exclude=_NOT_FINGERPRINTED)
    fields["images"] = [image.sha256 for image in request.images]
    fields["mask"] = request.mask.sha256 if request.mask is not None else None
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_owner() -> str:
    """An owner name for one attempt: ``"<host>/<pid>/<uuid>"``."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex}"


def holder_is_dead(holder: str | None) -> bool:
    """Whether ``holder`` (from ``new_owner``) is a process of this host that no longer runs."""
    host, _, rest = (holder or "").partition("/")
    pid = rest.partition("/")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's (EPERM)
        return False
    return False


def _conflict(key: str) -> IdempotencyConflictError:
    return IdempotencyConflictError(
        f"idempotency key {key!r} was already used for a request with different parameters; "
        "a key names one request: use a new key for this one", idempotency_key=key)


class MemoryClaims:
    """Claims in a dict: one process (the memory job store)."""

    def __init__(self) -> None:
        self._claims: dict[str, dict[str, Any]] = {}
        self._claims_lock = threading.Lock()

    def claim(self, key: str, fingerprint: str, owner: str, lease_s: float = DEFAULT_LEASE_S, *,
              take_over: str | None = None) -> Claim:
        now = time.time()
        with self._claims_lock:
            row = self._claims.get(key)
            if row is not None and row["fingerprint"] != fingerprint:
                raise _conflict(key)
            jobs = tuple(row["job_ids"]) if row else ()
            if row is not None and row["owner"] not in (None, owner, take_over) and row["until"] > now:
                return Claim(key, "held", fingerprint, row["until"] - now, jobs, row["owner"])
            self._claims[key] = {"fingerprint": fingerprint, "owner": owner, "until": now + lease_s,
                                 "job_ids": list(jobs), "at": now}
        return Claim(key, "acquired", fingerprint, lease_s, jobs, owner)

    def renew_claim(self, key: str, owner: str, lease_s: float = DEFAULT_LEASE_S) -> bool:
        with self._claims_lock:
            row = self._claims.get(key)
            if row is None or row["owner"] != owner:
                return False
            row["until"] = time.time() + lease_s
            return True

    def complete_claim(self, key: str, owner: str, job_ids: list[str] | tuple[str, ...] = ()) -> None:
        self._end(key, owner, list(job_ids))

    def release_claim(self, key: str, owner: str) -> None:
        self._end(key, owner, None)

    def _end(self, key: str, owner: str, job_ids: list[str] | None) -> None:
        with self._claims_lock:
            row = self._claims.get(key)
            if row is not None and row["owner"] == owner:
                row.update(owner=None, until=0.0, at=time.time())
                if job_ids is not None:
                    row["job_ids"] = job_ids

    def _prune_claims(self, cutoff: float) -> None:
        with self._claims_lock:
            for key in [k for k, r in self._claims.items() if r["at"] < cutoff and r["owner"] is None]:
                del self._claims[key]


CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, owner TEXT, lease_until REAL NOT NULL,
    job_ids TEXT NOT NULL, updated_at REAL NOT NULL
);
"""


class SqliteClaims:
    """Claims in the job store's SQLite file (table ``claims``), one transaction per change."""

    def _connect(self) -> sqlite3.Connection:  # pragma: no cover - provided by SqliteJobStore
        raise NotImplementedError

    def claim(self, key: str, fingerprint: str, owner: str, lease_s: float = DEFAULT_LEASE_S, *,
              take_over: str | None = None) -> Claim:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")  # the check and the take in one write transaction
        try:
            now = time.time()
            row = conn.execute("SELECT fingerprint, owner, lease_until, job_ids FROM claims WHERE key = ?",
                               (key,)).fetchone()
            if row is not None and row[0] != fingerprint:
                raise _conflict(key)
            jobs = tuple(json.loads(row[3])) if row else ()
            if row is not None and row[1] not in (None, owner, take_over) and row[2] > now:
                conn.execute("ROLLBACK")
                return Claim(key, "held", fingerprint, row[2] - now, jobs, row[1])
            conn.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                         (key, fingerprint, owner, now + lease_s, json.dumps(list(jobs)), now))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return Claim(key, "acquired", fingerprint, lease_s, jobs, owner)

    def renew_claim(self, key: str, owner: str, lease_s: float = DEFAULT_LEASE_S) -> bool:
        cursor = self._connect().execute("UPDATE claims SET lease_until = ? WHERE key = ? AND owner = ?",
                                         (time.time() + lease_s, key, owner))
        return cursor.rowcount == 1

    def complete_claim(self, key: str, owner: str, job_ids: list[str] | tuple[str, ...] = ()) -> None:
        self._connect().execute(
            "UPDATE claims SET owner = NULL, lease_until = 0, job_ids = ?, updated_at = ? WHERE key = ? AND owner = ?",
            (json.dumps(list(job_ids)), time.time(), key, owner))

    def release_claim(self, key: str, owner: str) -> None:
        self._connect().execute(
            "UPDATE claims SET owner = NULL, lease_until = 0, updated_at = ? WHERE key = ? AND owner = ?",
            (time.time(), key, owner))

    def _prune_claims(self, cutoff: float) -> None:
        self._connect().execute("DELETE FROM claims WHERE updated_at < ? AND owner IS NULL", (cutoff,))


# All four scripts read the Redis server's clock, so leases mean the same on every machine.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
_CLAIM_LUA = _NOW + """
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp and fp ~= ARGV[1] then return {'conflict', 0, '[]', ''} end
local owner = redis.call('HGET', KEYS[1], 'owner')
local untilms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
local jobs = redis.call('HGET', KEYS[1], 'jobs') or '[]'
if owner and owner ~= '' and owner ~= ARGV[2] and owner ~= ARGV[5] and untilms > now then
  return {'held', untilms - now, jobs, owner}
end
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'owner', ARGV[2], 'until', now + tonumber(ARGV[3]), 'jobs', jobs)
redis.call('ZADD', KEYS[2], now, ARGV[4])
return {'acquired', tonumber(ARGV[3]), jobs, ARGV[2]}
"""
_RENEW_LUA = _NOW + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'until', now + tonumber(ARGV[2]))
return 1
"""
_END_LUA = _NOW + """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '', 'until', 0)
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'jobs', ARGV[2]) end
redis.call('ZADD', KEYS[2], now, ARGV[3])
return 1
"""


class RedisClaims:
    """Claims as Redis hashes (``<prefix>claim:<key>``), changed only by Lua scripts (atomic)."""

    _redis: Any
    _prefix: str

    def _scripts(self) -> dict[str, Any]:
        scripts = getattr(self, "_claim_scripts", None)
        if scripts is None:
            scripts = {name: self._redis.register_script(lua) for name, lua in
                       (("claim", _CLAIM_LUA), ("renew", _RENEW_LUA), ("end", _END_LUA))}
            self._claim_scripts = scripts
        return scripts

    def _claim_keys(self, key: str) -> list[str]:
        return [f"{self._prefix}claim:{key}", f"{self._prefix}claims"]

    def claim(self, key: str, fingerprint: str, owner: str, lease_s: float = DEFAULT_LEASE_S, *,
              take_over: str | None = None) -> Claim:
        answer = self._scripts()["claim"](
            keys=self._claim_keys(key), args=[fingerprint, owner, int(lease_s * 1000), key, take_over or ""])
        state, left_ms, jobs, *holder = (a.decode() if isinstance(a, bytes) else a for a in answer)
        if state == "conflict":
            raise _conflict(key)
        return Claim(key, "acquired" if state == "acquired" else "held", fingerprint, int(left_ms) / 1000,
                     tuple(json.loads(jobs)), holder[0] if holder else None)

    def renew_claim(self, key: str, owner: str, lease_s: float = DEFAULT_LEASE_S) -> bool:
        return bool(self._scripts()["renew"](keys=self._claim_keys(key), args=[owner, int(lease_s * 1000)]))

    def complete_claim(self, key: str, owner: str, job_ids: list[str] | tuple[str, ...] = ()) -> None:
        self._scripts()["end"](keys=self._claim_keys(key), args=[owner, json.dumps(list(job_ids)), key])

    def release_claim(self, key: str, owner: str) -> None:
        self._scripts()["end"](keys=self._claim_keys(key), args=[owner, "", key])

    def _prune_claims(self, cutoff: float) -> None:
        index = f"{self._prefix}claims"
        for raw in self._redis.zrangebyscore(index, "-inf", f"({cutoff * 1000}"):
            key = raw.decode()
            name = f"{self._prefix}claim:{key}"
            if (self._redis.hget(name, "owner") or b"") == b"":
                self._redis.delete(name)
                self._redis.zrem(index, raw)


# -- how a call holds a claim ---------------------------------------------------------------

#: Longest pause between two looks at a key another call holds.
_MAX_POLL_S = 0.5

#: The claim the running call holds, as (store, key, owner, lease_s), inside `held_claim`:
#: code that runs right before a request goes out (a fleet worker's limiter) checks and renews it
#: then, so a call whose lease lapsed while its event loop stood still sends nothing.
current_claim: contextvars.ContextVar[tuple[Any, str, str, float] | None] = contextvars.ContextVar(
    "imagegen_current_claim", default=None)


@contextlib.asynccontextmanager
async def held_claim(store: Any, request: ImageRequest, deadline: float, *,
                     lease_s: float = DEFAULT_LEASE_S) -> AsyncIterator[list[str]]:
    """Hold ``request``'s idempotency key for the length of the ``async with`` block.

    Waits (until ``deadline``, a ``time.monotonic()`` value) while another call holds the key,
    takes over from a holder that died on this host, renews the lease while the block runs,
    and at the end completes the claim with the job ids the block appended to the yielded
    list, or releases it when there are none. Raises ``IdempotencyConflictError`` (the key
    names other parameters) and ``JobTimeoutError`` (still held at the deadline); a store fault
    is the store's ``StorageError``, raised before anything is sent.
    """
    key = request.idempotency_key
    if key is None:
        raise ValueError("held_claim needs a request with an idempotency key")
    owner = new_owner()
    await _acquire(store, key, request_fingerprint(request), owner, deadline, lease_s)
    renewing = asyncio.ensure_future(_keep_renewing(store, key, owner, lease_s))
    jobs: list[str] = []
    holding = current_claim.set((store, key, owner, lease_s))
    try:
        yield jobs
    finally:
        current_claim.reset(holding)
        renewing.cancel()
        end = functools.partial(store.complete_claim, key, owner, jobs) if jobs else \
            functools.partial(store.release_claim, key, owner)
        try:
            # Shielded: a cancelled call still gives the key back (else others wait out the lease).
            await asyncio.shield(asyncio.to_thread(end))
        except Exception as exc:  # a store fault: the lease runs out by itself
            log.warning("imagegen could not hand back idempotency key %r (%s); other calls with it "
                        "wait until its lease ends in %.0f s", key, exc, lease_s)


async def _acquire(store: Any, key: str, fingerprint: str, owner: str, deadline: float, lease_s: float) -> Claim:
    pause = 0.02
    while True:
        claim: Claim = await asyncio.to_thread(store.claim, key, fingerprint, owner, lease_s)
        if not claim.acquired and holder_is_dead(claim.holder):
            claim = await asyncio.to_thread(functools.partial(store.claim, key, fingerprint, owner, lease_s,
                                                              take_over=claim.holder))
        if claim.acquired:
            return claim
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise JobTimeoutError(
                f"another call is running the request with idempotency key {key!r} and it did not finish in "
                "time; call again with the same key later: you get its outcome without paying again")
        await asyncio.sleep(min(pause, remaining))
        pause = min(pause * 2, _MAX_POLL_S)


async def _keep_renewing(store: Any, key: str, owner: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            kept = await asyncio.to_thread(store.renew_claim, key, owner, lease_s)
        except Exception as exc:
            log.warning("imagegen could not renew its claim on idempotency key %r: %s", key, exc)
            continue
        if not kept:
            log.warning("imagegen lost its claim on idempotency key %r (its lease ran out)", key)
            return
