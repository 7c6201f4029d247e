"""The result cache: identical requests are served without calling the provider.

The key is a hash of the canonical request — provider instance, model, prompt, every
option, and the content hashes of input images — so equal requests hit and any
difference misses. A hit returns the stored images with ``cached=True`` and zero
cost. Concurrent identical requests in one process share one upstream call.

Backends: ``memory``; ``disk`` (the default: a SQLite index plus content-addressed
image files, safe with several processes, with a TTL and a size cap evicted least
recently used first); ``redis`` for fleets (images stored once by content hash,
metadata by request key, both with the TTL).
"""

from __future__ import annotations

import asyncio
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
from ._sqlite import ThreadConnections

__all__ = ["CacheBackend", "Coalescer", "DiskCache", "MemoryCache", "RedisCache", "cache_key", "default_cache_dir"]

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


def _pack(result: ImageResult) -> tuple[str, list[Image]]:
    meta = result.model_dump(mode="json", exclude={"images": {"__all__": {"data"}}, "attempts": True})
    return json.dumps(meta), list(result.images)


def _unpack(meta: str, images: list[bytes]) -> ImageResult:
    data = json.loads(meta)
    data["images"] = [Image(data=blob, **{k: v for k, v in info.items() if k != "data"})
                      for info, blob in zip(data["images"], images, strict=True)]
    result = ImageResult.model_validate(data)
    return result.model_copy(update={"cached": True, "cost": Cost(usd=0.0, credits=0.0, estimated=False)})


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
        self.hits = self.misses = 0

    def get(self, key: str) -> ImageResult | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or (self.ttl_s is not None and time.time() - item[0] > self.ttl_s):
                self._items.pop(key, None)
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
        meta, images = _pack(item[2])
        return _unpack(meta, [i.data for i in images])

    def put(self, key: str, result: ImageResult) -> None:
        size = sum(len(i.data) for i in result.images)
        with self._lock:
            self._items[key] = (time.time(), size, result)
            self._items.move_to_end(key)
            self._evict()

    def _evict(self) -> int:
        removed = 0
        while self.max_bytes is not None and sum(s for _, s, _ in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)
            removed += 1
        return removed

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"backend": "memory", "entries": len(self._items), "hits": self.hits, "misses": self.misses,
                    "bytes": sum(s for _, s, _ in self._items.values())}

    def clear(self) -> int:
        with self._lock:
            count = len(self._items)
            self._items.clear()
            return count

    def prune(self) -> int:
        with self._lock:
            expired = [k for k, (t, _, _) in self._items.items()
                       if self.ttl_s is not None and time.time() - t > self.ttl_s]
            for key in expired:
                del self._items[key]
            return len(expired) + self._evict()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, meta TEXT NOT NULL, images TEXT NOT NULL, bytes INTEGER NOT NULL,
    created REAL NOT NULL, used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_used ON entries(used);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class DiskCache:
    """SQLite index + content-addressed files: ``<dir>/index.sqlite3`` and ``<dir>/blobs/ab/<sha256>``.

    Several processes may share one directory: the index uses WAL and short
    transactions, blobs are written to a temporary name and renamed into place.
    """

    #: A local index lookup (and, on a hit, file reads): cheaper on the loop than a thread hop.
    blocking_get = False

    def __init__(self, path: str | os.PathLike[str] | None = None, *, ttl_s: float | None = None,
                 max_bytes: int | None = 2 * 1024**3) -> None:
        self.root = Path(path) if path else default_cache_dir()
        self.blobs = BlobDir(self.root / "blobs")
        self.ttl_s, self.max_bytes = ttl_s, max_bytes
        self._connections = ThreadConnections(self.root / "index.sqlite3")
        self._counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    def _count(self, name: str) -> None:
        # Counted in memory and written with the next put or stats(): a write per lookup would
        # cost more than the lookup.
        with self._counts_lock:
            self._counts[name] = self._counts.get(name, 0) + 1

    def _flush_counts(self) -> None:
        with self._counts_lock:
            counts, self._counts = self._counts, {}
        for name, value in counts.items():
            self._db().execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                               "value = value + excluded.value", (name, value))

    def get(self, key: str) -> ImageResult | None:
        row = self._db().execute("SELECT meta, images, created FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None or (self.ttl_s is not None and time.time() - row[2] > self.ttl_s):
            self._count("misses")
            return None
        try:
            blobs = [self.blobs.read(sha) for sha in json.loads(row[1])]
        except OSError:  # evicted by another process between the two reads
            self._count("misses")
            return None
        self._db().execute("UPDATE entries SET used = ? WHERE key = ?", (time.time(), key))
        self._count("hits")
        return _unpack(row[0], blobs)

    def put(self, key: str, result: ImageResult) -> None:
        meta, images = _pack(result)
        for image in images:
            self.blobs.put(image.sha256, image.data)
        now = time.time()
        self._db().execute(
            "INSERT OR REPLACE INTO entries (key, meta, images, bytes, created, used) VALUES (?, ?, ?, ?, ?, ?)",
            (key, meta, json.dumps([i.sha256 for i in images]), sum(len(i.data) for i in images), now, now))
        self._flush_counts()
        if self.max_bytes is not None:
            self._evict_lru()

    def _evict_lru(self) -> int:
        db = self._db()
        total = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM entries").fetchone()[0]
        removed = 0
        while self.max_bytes is not None and total > self.max_bytes:
            row = db.execute("SELECT key, bytes FROM entries ORDER BY used LIMIT 1").fetchone()
            if row is None:
                break
            db.execute("DELETE FROM entries WHERE key = ?", (row[0],))
            total -= row[1]
            removed += 1
        if removed:
            self._drop_orphans()
        return removed

    def _drop_orphans(self) -> None:
        used = {sha for (images,) in self._db().execute("SELECT images FROM entries") for sha in json.loads(images)}
        for blob in self.blobs.names():
            if blob.name not in used:
                blob.unlink(missing_ok=True)  # this store's name only: a linked copy elsewhere stays

    def stats(self) -> dict[str, Any]:
        self._flush_counts()
        db = self._db()
        entries, size = db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM entries").fetchone()
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        return {"backend": "disk", "path": str(self.root), "entries": entries, "bytes": size,
                "hits": counters.get("hits", 0), "misses": counters.get("misses", 0),
                "max_bytes": self.max_bytes, "ttl_s": self.ttl_s}

    def clear(self) -> int:
        count: int = self._db().execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        self._db().execute("DELETE FROM entries")
        self._drop_orphans()
        return count

    def prune(self) -> int:
        removed = 0
        if self.ttl_s is not None:
            removed += self._db().execute("DELETE FROM entries WHERE created < ?",
                                          (time.time() - self.ttl_s,)).rowcount
        removed += self._evict_lru()
        self._drop_orphans()
        return removed


class RedisCache:
    """Metadata by request key, images once by content hash; both expire after the TTL."""

    #: Network round trips: run off the event loop.
    blocking_get = True

    def __init__(self, url: str, *, ttl_s: float | None = None, prefix: str = "imagegen:cache:") -> None:
        import redis  # the `redis` extra; imported only when configured

        # Any: redis-py types every reply as a union of all reply shapes (bytes | str | list...).
        self._redis: Any = redis.Redis.from_url(url)
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
        if any(b is None for b in blobs):
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
    """Concurrent identical requests in one process share one upstream call."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[ImageResult]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[ImageResult]]) -> tuple[ImageResult, bool]:
        """Return (result, shared): ``shared`` is True for callers that waited on another's call."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[ImageResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await call()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: followers re-raise it, nobody else has to
            raise
        else:
            future.set_result(result)
            return result, False
        finally:
            del self._inflight[key]
