"""The job store: what a restarted process needs to finish or report a job.

Each submitted job is recorded with its request, provider, native id, charges and
outcome. SQLite in the user data directory by default (safe across processes:
WAL mode and a busy timeout); memory for tests and throwaway clients. Result
images of any real size are kept as content-addressed files beside the database
(``jobs-images/``), named by SHA-256 in the rows, so rows stay small, nothing is
written twice (SQLite's WAL writes a blob once to the log and again to the database)
and an image the disk cache also keeps is on disk once (a hard link). Small images
(thumbnails, test images) stay in the row: for them a file costs more than it saves.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ._blobs import BlobDir
from ._claims import CLAIMS_SCHEMA, Claim, MemoryClaims, RedisClaims, SqliteClaims
from ._models import Job
from ._sqlite import ThreadConnections, Writer
from ._storage import REDIS_TIMEOUT_S, describe_fault

__all__ = ["JobStore", "MemoryJobStore", "RedisJobStore", "SqliteJobStore", "default_data_dir", "put_job"]

log = logging.getLogger("imagegen")


def default_data_dir() -> Path:
    """``$IMAGEGEN_DATA_DIR``, else the platform's user data directory."""
    env = os.environ.get("IMAGEGEN_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("imagegen"))


class JobStore(Protocol):
    def put(self, job: Job) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    def recent(self, limit: int = 50) -> list[Job]: ...
    def find(self, idempotency_key: str) -> Job | None:
        """The latest job submitted for this logical request (see ``ImageRequest.idempotency_key``)."""
    def prune(self, older_than_s: float) -> int:
        """Forget finished jobs last updated more than ``older_than_s`` seconds ago, with their
        images; queued and running jobs are kept (they can still be resumed). Returns how many."""
    # Idempotency claims: see ``imagegen._claims`` for what they promise.
    def claim(self, key: str, fingerprint: str, owner: str, lease_s: float = ..., *,
              take_over: str | None = None) -> Claim: ...
    def renew_claim(self, key: str, owner: str, lease_s: float = ...) -> bool: ...
    def complete_claim(self, key: str, owner: str, job_ids: list[str] | tuple[str, ...] = ()) -> None: ...
    def release_claim(self, key: str, owner: str) -> None: ...


def put_job(store: JobStore, job: Job) -> Awaitable[None]:
    """Store ``job`` without blocking the event loop; await the result for the write to be done.

    A store with a writer thread queues the write at once, in call order (so a claim completed
    after it, through the same writer, never names a job not yet stored); otherwise its
    ``aput``, else the store's ``put`` on a worker thread (a third-party store)."""
    asubmit = getattr(store, "asubmit_put", None)
    if asubmit is not None:
        return asubmit(job)  # type: ignore[no-any-return]
    submit = getattr(store, "submit_put", None)
    if submit is not None:
        return asyncio.wrap_future(submit(job))
    aput = getattr(store, "aput", None)
    return aput(job) if aput is not None else asyncio.to_thread(store.put, job)


def _nothing(conn: sqlite3.Connection) -> None:
    return None


def _key_of(job: Job) -> str | None:
    return job.request.idempotency_key if job.request is not None else None


def _cutoff(older_than_s: float) -> datetime:
    if older_than_s < 0:
        raise ValueError(f"older_than_s must be zero or more, not {older_than_s}")
    return datetime.now(UTC) - timedelta(seconds=older_than_s)


class MemoryJobStore(MemoryClaims):
    """Jobs in a dict: one process, gone at exit."""

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            key = _key_of(job)
            if key:
                self._by_key[key] = job.id

    async def aput(self, job: Job) -> None:
        self.put(job)  # a dict write: cheaper on the loop than any hand-off

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self, limit: int = 50) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.updated_at, reverse=True)
        return jobs[:limit]

    def find(self, idempotency_key: str) -> Job | None:
        with self._lock:
            job_id = self._by_key.get(idempotency_key)
            return None if job_id is None else self._jobs.get(job_id)

    def prune(self, older_than_s: float) -> int:
        cutoff = _cutoff(older_than_s)
        with self._lock:
            old = [j for j in self._jobs.values() if j.done and j.updated_at < cutoff]
            for job in old:
                del self._jobs[job.id]
                key = _key_of(job)
                if key and self._by_key.get(key) == job.id:
                    del self._by_key[key]
        self._prune_claims(cutoff.timestamp())
        return len(old)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, provider TEXT NOT NULL, native_id TEXT NOT NULL, status TEXT NOT NULL,
    idem_key TEXT, body TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at);
CREATE INDEX IF NOT EXISTS jobs_idem_key ON jobs(idem_key);
CREATE TABLE IF NOT EXISTS job_files (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, sha256 TEXT NOT NULL, data BLOB, PRIMARY KEY (job_id, idx)
);
"""
#: Images up to this size are kept in the row (``data``), larger ones as files. SQLite's own
#: measurements put the break-even near 100 KB; a file also costs several system calls.
INLINE_MAX_BYTES = 64 * 1024
#: Longest a read in this process waits for the image files of a job it is still writing.
PENDING_IMAGES_WAIT_S = 2.0
#: Stores written before the images moved to files kept them here; still read.
_LEGACY_IMAGES = "job_images"


class SqliteJobStore(SqliteClaims):
    """Jobs in one SQLite file, shared by every process that opens it.

    Writes go through the store's ``Writer`` thread, many to a commit; a job stored again
    before the writer got to it is written once, in its latest state. ``aput`` awaits the
    write without blocking the event loop, ``put`` waits for it.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else default_data_dir() / "jobs.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._writer = Writer(self._connections.get, name="jobs")
        self.blobs = BlobDir(self.path.with_name(f"{self.path.stem}-images"))
        #: job id -> (process, the queued write of its image files) (``asubmit_put``), until it lands.
        self._images_pending: dict[str, tuple[int, concurrent.futures.Future[None]]] = {}
        with self._connect() as conn:
            conn.executescript(_SCHEMA + CLAIMS_SCHEMA)
            self._legacy = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                        (_LEGACY_IMAGES,)).fetchone() is not None

    def _connect(self) -> sqlite3.Connection:
        return self._connections.get()

    def put(self, job: Job) -> None:
        self.submit_put(job).result()

    async def aput(self, job: Job) -> None:
        await self.asubmit_put(job)

    def submit_put(self, job: Job) -> concurrent.futures.Future[None]:
        """Queue the write and return at once; the future resolves once it is committed."""
        return self._writer.submit(functools.partial(self._write, job), key=job.id)

    def asubmit_put(self, job: Job) -> asyncio.Future[None]:
        """``submit_put`` for the running event loop (``Writer.asubmit``), in two steps when the
        job has images to keep as files: the record now (the future resolves once it is
        committed), its images ``later`` in a transaction of their own, so hashing and writing
        megabytes delays no caller (the caller has the images in hand). Until they land, reads
        in this process wait for them; another process reads the job as "images not stored yet"
        (``ValueError``: a ``StorageError`` to a caller), as it would after a crash in between."""
        images = job.result.images if job.result is not None else []
        if all(len(image.data) <= INLINE_MAX_BYTES for image in images):
            return self._writer.asubmit(functools.partial(self._write, job), key=job.id)
        record = self._writer.asubmit(functools.partial(self._write_record, job), key=job.id)
        files = self._writer.submit(functools.partial(self._write_images, job), key=("images", job.id), later=True,
                                    prepare=lambda: [image.sha256 for image in images])  # no lock held meanwhile
        self._images_pending[job.id] = (os.getpid(), files)
        files.add_done_callback(functools.partial(self._images_written, job.id))
        return record

    def _images_written(self, job_id: str, done: concurrent.futures.Future[None]) -> None:
        if self._images_pending.get(job_id, (0, None))[1] is done:
            del self._images_pending[job_id]
        error = done.exception()
        if error is not None:  # nobody awaits this write: the log is where its fault goes
            log.warning("imagegen: the job store could not keep job %s's images (%s); status() of it will say so",
                        job_id, describe_fault(error))

    async def aflush(self) -> None:
        """Await the image files this process has queued (``AsyncClient.flush``, ``aclose``): a
        store with none pending answers at once, without waking (or starting) its writer."""
        if any(pid == os.getpid() for pid, _ in list(self._images_pending.values())):
            await self._writer.asubmit(_nothing, later=True)

    def complete_claim(self, key: str, owner: str, job_ids: list[str] | tuple[str, ...] = ()) -> None:
        # Through the writer, after every job write queued before it, image files included (a
        # ``later`` write): once a claim says "done", the jobs it names are in the store, whole,
        # for whoever claims the key next.
        self._writer.submit(lambda conn: SqliteClaims.complete_claim(self, key, owner, job_ids), later=True).result()

    def close(self) -> None:
        """Commit queued writes and stop the writer thread (the store stays usable)."""
        self._writer.close()

    def _write(self, job: Job, conn: sqlite3.Connection) -> None:
        self._write_record(job, conn)
        self._write_images(job, conn)

    def _write_record(self, job: Job, conn: sqlite3.Connection) -> None:
        # pydantic's own JSON writer: a quarter of the time of model_dump + json.dumps (this thread
        # holds the GIL while it serializes, and the event loop waits for it).
        body = job.model_dump_json(exclude={"result": {"images": {"__all__": {"data"}}}})
        conn.execute(
            "INSERT OR REPLACE INTO jobs (id, provider, native_id, status, idem_key, body, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.provider, job.native_id, job.status, _key_of(job), body,
             job.updated_at.isoformat()),
        )

    def _write_images(self, job: Job, conn: sqlite3.Connection) -> None:
        # On the writer's thread, inside its write transaction: prune() deletes unused files
        # under the same lock, so a file written here is still there when the row commits.
        images = job.result.images if job.result is not None else []
        rows = []
        for i, image in enumerate(images):
            inline = len(image.data) <= INLINE_MAX_BYTES
            if not inline:
                self.blobs.put(image.sha256, image.data)
            rows.append((job.id, i, image.sha256, image.data if inline else None))
        conn.execute("DELETE FROM job_files WHERE job_id = ?", (job.id,))
        conn.executemany("INSERT INTO job_files (job_id, idx, sha256, data) VALUES (?, ?, ?, ?)", rows)

    def get(self, job_id: str) -> Job | None:
        row = self._connect().execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._load(job_id, row[0])

    def recent(self, limit: int = 50) -> list[Job]:
        rows = self._connect().execute(
            "SELECT id, body FROM jobs ORDER BY updated_at DESC LIMIT ?", (limit,)).fetchall()
        return [self._load(job_id, body) for job_id, body in rows]

    def find(self, idempotency_key: str) -> Job | None:
        row = self._connect().execute(
            "SELECT id, body FROM jobs WHERE idem_key = ? ORDER BY updated_at DESC LIMIT 1",
            (idempotency_key,)).fetchone()
        return None if row is None else self._load(*row)

    def _load(self, job_id: str, body: str) -> Job:
        data = json.loads(body)
        blobs: list[bytes] = []
        if data.get("result"):
            blobs = self._images(job_id)
            for image in data["result"]["images"]:
                image["data"] = ""  # the blobs go in after validation, without a base64 round trip
        # JSON mode, so every bytes field (the request's images) decodes from base64.
        job = Job.model_validate_json(json.dumps(data))
        if job.result is not None and job.result.images:
            if not blobs:
                raise ValueError(f"job {job_id}: its {len(job.result.images)} images are not stored (yet): the "
                                 "process that made the call is still writing them, or ended before it could")
            if len(blobs) != len(job.result.images):
                raise ValueError(f"job {job_id}: {len(job.result.images)} images recorded, {len(blobs)} stored")
            images = [image.model_copy(update={"data": blob})
                      for image, blob in zip(job.result.images, blobs, strict=True)]
            job = job.model_copy(update={"result": job.result.model_copy(update={"images": images})})
        return job

    def _images(self, job_id: str) -> list[bytes]:
        pid, pending = self._images_pending.get(job_id, (0, None))
        if pending is not None and pid == os.getpid():
            # Being written: a moment's wait, bounded (reads run on the event loop, and the write
            # may be stuck behind another process's lock); still pending after it reads as below.
            concurrent.futures.wait([pending], timeout=PENDING_IMAGES_WAIT_S)
        conn = self._connect()
        rows = conn.execute("SELECT sha256, data FROM job_files WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        if not rows and self._legacy:
            return [blob for (blob,) in conn.execute(
                f"SELECT data FROM {_LEGACY_IMAGES} WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()]
        try:
            return [data if data is not None else self.blobs.read(sha) for sha, data in rows]
        except OSError as exc:
            raise ValueError(f"job {job_id}: an image file is missing from {self.blobs.root} ({exc.strerror}); "
                             "the job's images cannot be returned") from None

    def prune(self, older_than_s: float) -> int:
        cutoff = _cutoff(older_than_s).isoformat()
        self._prune_claims(_cutoff(older_than_s).timestamp())
        return self._writer.call(lambda conn: self._prune(conn, cutoff))

    def _prune(self, conn: sqlite3.Connection, cutoff: str) -> int:
        ids = [(job_id,) for (job_id,) in conn.execute(
            "SELECT id FROM jobs WHERE updated_at < ? AND status IN ('succeeded', 'failed', 'cancelled')",
            (cutoff,))]
        conn.executemany("DELETE FROM jobs WHERE id = ?", ids)
        conn.executemany("DELETE FROM job_files WHERE job_id = ?", ids)
        if self._legacy:
            conn.executemany(f"DELETE FROM {_LEGACY_IMAGES} WHERE job_id = ?", ids)
        # Under the write lock, so that no put() in another process commits a row naming one of
        # these files meanwhile (its files are written under the same lock).
        used = {sha for (sha,) in conn.execute("SELECT sha256 FROM job_files WHERE data IS NULL")}
        for path in self.blobs.names():
            if path.name not in used:
                path.unlink(missing_ok=True)  # this store's name: the disk cache's link stays
        return len(ids)


class RedisJobStore(RedisClaims):
    """Jobs in Redis, shared by a fleet: one JSON document per job, a sorted set for recency."""

    def __init__(self, url: str, *, prefix: str = "imagegen:") -> None:
        import redis  # the `redis` extra; imported only when configured

        # Any: redis-py types every reply as a union of all reply shapes (bytes | str | list...).
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                                socket_connect_timeout=REDIS_TIMEOUT_S)
        self._prefix = prefix

    def put(self, job: Job) -> None:
        pipe = self._redis.pipeline()
        pipe.set(f"{self._prefix}job:{job.id}", job.model_dump_json())
        pipe.zadd(f"{self._prefix}jobs", {job.id: job.updated_at.timestamp()})
        key = _key_of(job)
        if key:
            pipe.set(f"{self._prefix}jobkey:{key}", job.id)
        pipe.execute()

    async def aput(self, job: Job) -> None:
        await asyncio.to_thread(self.put, job)  # a network round trip: off the event loop

    def get(self, job_id: str) -> Job | None:
        raw = self._redis.get(f"{self._prefix}job:{job_id}")
        return None if raw is None else Job.model_validate_json(raw)

    def recent(self, limit: int = 50) -> list[Job]:
        ids = self._redis.zrevrange(f"{self._prefix}jobs", 0, limit - 1)
        jobs = (self.get(i.decode()) for i in ids)
        return [j for j in jobs if j is not None]

    def find(self, idempotency_key: str) -> Job | None:
        job_id = self._redis.get(f"{self._prefix}jobkey:{idempotency_key}")
        return None if job_id is None else self.get(job_id.decode())

    def prune(self, older_than_s: float) -> int:
        cutoff = _cutoff(older_than_s).timestamp()
        self._prune_claims(cutoff)
        pruned = 0
        for raw in self._redis.zrangebyscore(f"{self._prefix}jobs", "-inf", f"({cutoff}"):
            job = self.get(raw.decode())
            if job is not None and not job.done:
                continue
            pipe = self._redis.pipeline()
            pipe.delete(f"{self._prefix}job:{raw.decode()}")
            pipe.zrem(f"{self._prefix}jobs", raw)
            key = _key_of(job) if job is not None else None
            if key and self._redis.get(f"{self._prefix}jobkey:{key}") == raw:
                pipe.delete(f"{self._prefix}jobkey:{key}")
            pipe.execute()
            pruned += job is not None
        return pruned
