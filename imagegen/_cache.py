"""The result cache: identical requests are served without calling the provider.

The key is a hash of the canonical request — provider instance, model, prompt, every
option, and the content hashes of input images — so equal requests hit and any
difference misses. A hit returns the stored images with ``cached=True`` and zero
cost. Concurrent identical requests in one process share one upstream call. A request
whose input image is given as a URL is not cached at all: the image behind the URL may
change, and keying it by its bytes would cost a download on every call. A blob whose bytes
no longer hash to its name is a miss, never an image served.

Backends: ``memory``; ``disk`` (the default: a SQLite index plus content-addressed
image files, safe with several processes, with a TTL and a size cap evicted least
recently used first); ``redis`` for fleets (images stored once by content hash,
metadata by request key, both with the TTL).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from ._blobs import BlobDir
from ._models import Cost, Image, ImageRequest, ImageResult
from ._sqlite import ThreadConnections, Writer
from ._storage import REDIS_TIMEOUT_S

__all__ = ["CacheBackend", "Coalescer", "DiskCache", "MemoryCache", "RedisCache", "cache_key", "default_cache_dir",
           "put_result"]

#: Request fields that do not change what the provider is asked to draw.
_NOT_IN_KEY = {"cache", "timeout", "idempotency_key", "webhook_url", "provider", "model", "images", "mask"}


def default_cache_dir() -> Path:
    env = os.environ.get("IMAGEGEN_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("imagegen"))


def cache_key(request: ImageRequest, *, provider: str, model: str) -> str:
    """A stable hash of everything that determines the output."""
    fields = request.model_dump(mode="json", exclude=_NOT_IN_KEY)
    fields["images"] = [image.sha256 for image in request.images]
    fields["mask"] = request.mask.sha256 if request.mask is not None else None
    canonical = json.dumps({"provider": provider, "model": model, **fields}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _intact(shas: list[str], blobs: list[bytes]) -> bool:
    """Whether every blob still has the content its name (its SHA-256) promises: a file or key
    overwritten with anything else is a miss, never an image served."""
    return len(shas) == len(blobs) and all(
        hashlib.sha256(blob).hexdigest() == sha for sha, blob in zip(shas, blobs, strict=True))


def _pack(result: ImageResult) -> tuple[str, list[Image]]:
    # pydantic's own JSON writer: a quarter of the time of model_dump + json.dumps, on the writer
    # thread, which holds the GIL while it serializes.
    meta = result.model_dump_json(exclude={"images": {"__all__": {"data"}}, "attempts": True})
    return meta, list(result.images)


def _unpack(meta: str, images: list[bytes]) -> ImageResult:
    data = json.loads(meta)
    data["images"] = [Image(data=blob, **{k: v for k, v in info.items() if k != "data"})
                      for info, blob in zip(data["images"], images, strict=True)]
    result = ImageResult.model_validate(data)
    return result.model_copy(update={"cached": True, "cost": Cost(usd=0.0, credits=0.0, estimated=False)})


async def put_result(cache: CacheBackend, key: str, result: ImageResult) -> None:
    """Cache ``result`` without blocking the event loop: the disk cache's writer thread, a
    dict write on the loop for memory, a worker thread for anything else (Redis)."""
    aput = getattr(cache, "aput", None)
    if aput is not None:
        await aput(key, result)
    elif isinstance(cache, MemoryCache):
        cache.put(key, result)
    else:
        await asyncio.to_thread(cache.put, key, result)


class CacheBackend(Protocol):
    blocking_get: bool

    def get(self, key: str) -> ImageResult | None: ...
    def put(self, key: str, result: ImageResult) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def clear(self) -> int: ...
    def prune(self) -> int: ...


class MemoryCache:
    """An LRU dict in this process, with a TTL and a byte cap."""

    #: ``get`` is cheap enough to call on the event loop.
    blocking_get = False

    def __init__(self, *, ttl_s: float | None = None, max_bytes: int | None = None) -> None:
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._items: OrderedDict[str, tuple[float, int, ImageResult]] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0  # kept with every change: a put never sums the entries
        self.hits = self.misses = 0

    def get(self, key: str) -> ImageResult | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or (self.ttl_s is not None and time.time() - item[0] > self.ttl_s):
                self._drop(key)
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
        meta, images = _pack(item[2])
        return _unpack(meta, [i.data for i in images])

    def put(self, key: str, result: ImageResult) -> None:
        size = sum(len(i.data) for i in result.images)
        with self._lock:
            self._drop(key)
            self._items[key] = (time.time(), size, result)
            self._bytes += size
            self._evict()

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def _evict(self) -> int:
        removed = 0
        while self.max_bytes is not None and self._bytes > self.max_bytes and self._items:
            self._bytes -= self._items.popitem(last=False)[1][1]
            removed += 1
        return removed

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"backend": "memory", "entries": len(self._items), "hits": self.hits, "misses": self.misses,
                    "bytes": self._bytes}

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            self._bytes = 0
            return count

    def prune(self) -> int:
        with self._lock:
            expired = [k for k, (t, _, _) in self._items.items()
                       if self.ttl_s is not None and time.time() - t > self.ttl_s]
            for key in expired:
                self._drop(key)
            return len(expired) + self._evict()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, meta TEXT NOT NULL, images TEXT NOT NULL, bytes INTEGER NOT NULL,
    created REAL NOT NULL, used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_used ON entries(used);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inline_images (sha TEXT PRIMARY KEY, data BLOB NOT NULL);
"""
#: Images up to this size are kept in the index (``inline_images``), larger ones as files: a
#: small file costs more in system calls (open, write, rename; unlink at eviction) than its bytes
#: cost SQLite. The same limit as the job store's rows.
INLINE_MAX_BYTES = 64 * 1024
#: How many entries name each image file: an evicted entry's file is deleted when no other
#: entry names it, without listing the directory. Kept with every write to ``entries``, as is
#: the ``bytes`` counter (so a put never sums the table).
_REFS = "CREATE TABLE image_refs (sha TEXT PRIMARY KEY, refs INTEGER NOT NULL)"
_FILL_REFS = """
INSERT INTO image_refs SELECT value, COUNT(*) FROM entries, json_each(entries.images) GROUP BY value;
INSERT OR REPLACE INTO counters SELECT 'bytes', COALESCE(SUM(bytes), 0) FROM entries;
"""
_BUMP = "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value"
_NEW_ENTRY = "INSERT INTO entries (key, meta, images, bytes, created, used) VALUES (?, ?, ?, ?, ?, ?)"
#: Over the cap, evict down to this fraction of it: one eviction makes room for many puts.
LOW_WATER = 0.9


class DiskCache:
    """SQLite index + content-addressed files: ``<dir>/index.sqlite3`` and ``<dir>/blobs/ab/<sha256>``
    (images up to ``INLINE_MAX_BYTES`` in the index itself).

    Several processes may share one directory: the index uses WAL and short transactions,
    blobs are written to a temporary name and renamed into place. Writes (puts, recency
    updates of hits, hit/miss counts) go through the cache's ``Writer`` thread, batched;
    lookups read on the caller's thread. A put costs the same however full the cache is: the
    total size is a maintained counter, and over the cap the least recently used entries are
    evicted in one batch down to ``LOW_WATER`` of it, deleting only their own files.
    """

    #: A local index lookup (and, on a hit, file reads): cheaper on the loop than a thread hop.
    blocking_get = False

    def __init__(self, path: str | os.PathLike[str] | None = None, *, ttl_s: float | None = None,
                 max_bytes: int | None = 2 * 1024**3) -> None:
        self.root = Path(path) if path else default_cache_dir()
        self.blobs = BlobDir(self.root / "blobs")
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._connections = ThreadConnections(self.root / "index.sqlite3")
        self._writer = Writer(self._connections.get, name="cache")
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._prepare(self._db())

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @staticmethod
    def _prepare(db: sqlite3.Connection) -> None:
        db.executescript(_SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'image_refs'").fetchone() is None:
                db.execute(_REFS)  # a cache made before the counts were kept: count once
                for statement in _FILL_REFS.strip().split(";\n"):
                    db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Write the hit and miss counts still in memory (a process that only hit never put),
        commit queued writes and stop the writer thread (the cache stays usable)."""
        if self._counts:
            self._writer.call(self._flush_counts)
        self._writer.close()

    def _count(self, name: str) -> None:
        # Counted in memory and written with the next put or stats(): a write per lookup would
        # cost more than the lookup.
        with self._counts_lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def _flush_counts(self, db: sqlite3.Connection) -> None:
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        if counts:
            db.executemany(_BUMP, list(counts.items()))

    def get(self, key: str) -> ImageResult | None:
        row = self._db().execute("SELECT meta, images, created FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None or (self.ttl_s is not None and time.time() - row[2] > self.ttl_s):
            self._count("misses")
            return None
        shas = json.loads(row[1])
        try:
            blobs = self._read(shas)
        except OSError:  # evicted by another process between the two reads
            self._count("misses")
            return None
        if not _intact(shas, blobs):
            self._count("misses")
            return None
        now = time.time()
        # Recency for eviction, written by the writer (not awaited: a hit waits for no write).
        self._writer.submit(lambda db: db.execute("UPDATE entries SET used = ? WHERE key = ?", (now, key)),
                            key=("used", key))
        self._count("hits")
        return _unpack(row[0], blobs)

    def _read(self, shas: list[str]) -> list[bytes]:
        named = sorted(set(shas))
        inline = dict(self._db().execute(
            f"SELECT sha, data FROM inline_images WHERE sha IN ({', '.join('?' * len(named))})", named).fetchall())
        return [inline[sha] if sha in inline else self.blobs.read(sha) for sha in shas]

    def put(self, key: str, result: ImageResult) -> None:
        self._writer.call(functools.partial(self._store, key, result), key=("put", key))

    async def aput(self, key: str, result: ImageResult) -> None:
        await self._writer.acall(functools.partial(self._store, key, result), key=("put", key))

    def _store(self, key: str, result: ImageResult, db: sqlite3.Connection) -> None:
        # On the writer's thread, in its transaction: an eviction elsewhere (which holds the
        # same lock) cannot delete a file between its write here and the row's commit.
        meta, images = _pack(result)
        for image in images:
            if len(image.data) <= INLINE_MAX_BYTES:
                db.execute("INSERT OR IGNORE INTO inline_images VALUES (?, ?)", (image.sha256, image.data))
            else:
                self.blobs.put(image.sha256, image.data)
        shas = [i.sha256 for i in images]
        size = sum(len(i.data) for i in images)
        now = time.time()
        entry = (key, meta, json.dumps(shas), size, now, now)
        # A new key (the usual case) is one statement; a key cached before is replaced, and the
        # images only it named are let go below (after the new ones are counted: they may share).
        old = None
        if not db.execute(f"{_NEW_ENTRY} ON CONFLICT(key) DO NOTHING", entry).rowcount:
            old = db.execute("SELECT images, bytes FROM entries WHERE key = ?", (key,)).fetchone()
            db.execute(_NEW_ENTRY.replace("INSERT", "INSERT OR REPLACE", 1), entry)
        db.executemany("INSERT INTO image_refs VALUES (?, 1) ON CONFLICT(sha) DO UPDATE SET refs = refs + 1",
                       [(sha,) for sha in shas])
        if old is not None:
            self._unref(db, json.loads(old[0]))
        total = db.execute(f"{_BUMP} RETURNING value", ("bytes", size - (old[1] if old is not None else 0))).fetchone()
        self._flush_counts(db)
        if self.max_bytes is not None and total[0] > self.max_bytes:
            self._evict(db, int(self.max_bytes * LOW_WATER))

    @staticmethod
    def _bytes(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        return int(row[0]) if row else 0

    def _unref(self, db: sqlite3.Connection, shas: list[str]) -> None:
        """One entry fewer names each of ``shas``; a file no entry names any more is deleted."""
        db.executemany("UPDATE image_refs SET refs = refs - 1 WHERE sha = ?", [(sha,) for sha in shas])
        for sha in set(shas):
            if db.execute("DELETE FROM image_refs WHERE sha = ? AND refs <= 0", (sha,)).rowcount and \
                    not db.execute("DELETE FROM inline_images WHERE sha = ?", (sha,)).rowcount:
                self.blobs.remove(sha)  # this store's name only: a linked copy stays

    def _remove(self, db: sqlite3.Connection, victims: list[tuple[str, int, str]]) -> int:
        db.executemany("DELETE FROM entries WHERE key = ?", [(key,) for key, _, _ in victims])
        self._unref(db, [sha for _, _, images in victims for sha in json.loads(images)])
        db.execute(_BUMP, ("bytes", -sum(size for _, size, _ in victims)))
        return len(victims)

    def _evict(self, db: sqlite3.Connection, down_to: int) -> int:
        """Evict least recently used entries until the cache holds at most ``down_to`` bytes,
        reading only the entries evicted (through the recency index)."""
        excess = self._bytes(db) - down_to
        victims: list[tuple[str, int, str]] = []
        rows = db.execute("SELECT key, bytes, images FROM entries ORDER BY used")
        while excess > 0:
            chunk = rows.fetchmany(256)
            if not chunk:
                break
            for key, size, images in chunk:
                if excess <= 0:
                    break
                victims.append((key, size, images))
                excess -= size
        rows.close()
        return self._remove(db, victims)

    def stats(self) -> dict[str, Any]:
        self._writer.call(self._flush_counts)
        db = self._db()
        entries = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        return {"backend": "disk", "path": str(self.root), "entries": entries, "bytes": counters.get("bytes", 0),
                "hits": counters.get("hits", 0), "misses": counters.get("misses", 0),
                "max_bytes": self.max_bytes, "ttl_s": self.ttl_s}

    def clear(self) -> int:
        return self._writer.call(self._clear)

    def _clear(self, db: sqlite3.Connection) -> int:
        count = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        db.execute("DELETE FROM entries")
        db.execute("DELETE FROM image_refs")
        db.execute("DELETE FROM inline_images")
        db.execute("INSERT OR REPLACE INTO counters VALUES ('bytes', 0)")
        self._drop_orphans(db)
        return int(count)

    def prune(self) -> int:
        """Drop expired entries, evict down to the cap, and delete any file no entry names
        (left by a process that died mid-write): a maintenance pass, not a hot path."""
        return self._writer.call(self._prune)

    def _prune(self, db: sqlite3.Connection) -> int:
        removed = 0
        if self.ttl_s is not None:
            expired = db.execute("SELECT key, bytes, images FROM entries WHERE created < ?",
                                 (time.time() - self.ttl_s,)).fetchall()
            removed += self._remove(db, expired)
        if self.max_bytes is not None and self._bytes(db) > self.max_bytes:
            removed += self._evict(db, self.max_bytes)
        self._drop_orphans(db)
        return removed

    def _drop_orphans(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM inline_images WHERE sha NOT IN (SELECT sha FROM image_refs)")
        used = {sha for (sha,) in db.execute("SELECT sha FROM image_refs")}
        for blob in self.blobs.names():
            if blob.name not in used:
                blob.unlink(missing_ok=True)  # this store's name only: a linked copy elsewhere stays


class RedisCache:
    """Metadata by request key, images once by content hash; both expire after the TTL."""

    #: Network round trips: run off the event loop.
    blocking_get = True

    def __init__(self, url: str, *, ttl_s: float | None = None, prefix: str = "imagegen:cache:") -> None:
        import redis  # the `redis` extra; imported only when configured

        # Any: redis-py types every reply as a union of all reply shapes (bytes | str | list...).
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                                socket_connect_timeout=REDIS_TIMEOUT_S)
        self.ttl_s, self.prefix = ttl_s, prefix

    def _ttl(self) -> int | None:
        return None if self.ttl_s is None else max(1, int(self.ttl_s))

    def get(self, key: str) -> ImageResult | None:
        raw = self._redis.get(self.prefix + "req:" + key)
        if raw is None:
            self._redis.incr(self.prefix + "misses")
            return None
        entry = json.loads(raw)
        blobs = self._redis.mget([self.prefix + "img:" + sha for sha in entry["images"]])
        if any(b is None for b in blobs) or not _intact(entry["images"], blobs):
            self._redis.incr(self.prefix + "misses")
            return None
        self._redis.incr(self.prefix + "hits")
        return _unpack(entry["meta"], list(blobs))

    def put(self, key: str, result: ImageResult) -> None:
        meta, images = _pack(result)
        pipe = self._redis.pipeline()
        for image in images:
            pipe.set(self.prefix + "img:" + image.sha256, image.data, ex=self._ttl())
        entry = {"meta": meta, "images": [i.sha256 for i in images]}
        pipe.set(self.prefix + "req:" + key, json.dumps(entry), ex=self._ttl())
        pipe.execute()

    def stats(self) -> dict[str, Any]:
        entries = sum(1 for _ in self._redis.scan_iter(self.prefix + "req:*"))
        hits, misses = self._redis.mget([self.prefix + "hits", self.prefix + "misses"])
        return {"backend": "redis", "entries": entries, "hits": int(hits or 0), "misses": int(misses or 0),
                "ttl_s": self.ttl_s}

    def clear(self) -> int:
        keys = list(self._redis.scan_iter(self.prefix + "*"))
        if keys:
            self._redis.delete(*keys)
        return sum(1 for k in keys if k.startswith((self.prefix + "req:").encode()))

    def prune(self) -> int:
        return 0  # Redis expires keys itself


class Coalescer:
    """Concurrent identical requests in one process share one upstream call.

    The call runs in a task of its own, which every caller awaits through a shield: a caller
    that is cancelled (the first one included) leaves the call running for the others, and a
    call that may already be billed runs to its end (``spawn`` keeps it, so ``aclose`` waits).
    """

    def __init__(self, spawn: Callable[[Awaitable[ImageResult]], asyncio.Future[ImageResult]] | None = None) -> None:
        self._inflight: dict[str, asyncio.Future[ImageResult]] = {}
        self._spawn = spawn or asyncio.ensure_future

    async def run(self, key: str, call: Callable[[], Awaitable[ImageResult]]) -> tuple[ImageResult, bool]:
        """Return (result, shared): ``shared`` is True for callers that waited on another's call."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        task = self._spawn(call())
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task), False

    def _forget(self, key: str, done: asyncio.Future[ImageResult]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]
        if not done.cancelled():
            done.exception()  # retrieved here: a call whose every caller left must not warn at exit
