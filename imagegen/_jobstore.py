"""The job store: what a restarted process needs to finish or report a job.

Each submitted job is recorded with its request, provider, native id, charges and
outcome. SQLite in the user data directory by default (safe across processes:
WAL mode and a busy timeout); memory for tests and throwaway clients. Result
images are kept as blobs beside the job row so JSON stays small.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

from ._models import Job

__all__ = ["JobStore", "MemoryJobStore", "SqliteJobStore", "default_data_dir"]


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


class MemoryJobStore:
    """Jobs in a dict: one process, gone at exit."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def put(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self, limit: int = 50) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.updated_at, reverse=True)
        return jobs[:limit]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, provider TEXT NOT NULL, native_id TEXT NOT NULL, status TEXT NOT NULL,
    body TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at);
CREATE TABLE IF NOT EXISTS job_images (
    job_id TEXT NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (job_id, idx)
);
"""


class SqliteJobStore:
    """Jobs in one SQLite file, shared by every process that opens it."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else default_data_dir() / "jobs.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def put(self, job: Job) -> None:
        images = job.result.images if job.result is not None else []
        body = job.model_dump(mode="json", exclude={"result": {"images": {"__all__": {"data"}}}})
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO jobs (id, provider, native_id, status, body, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (job.id, job.provider, job.native_id, job.status, json.dumps(body), job.updated_at.isoformat()),
            )
            conn.execute("DELETE FROM job_images WHERE job_id = ?", (job.id,))
            conn.executemany("INSERT INTO job_images (job_id, idx, data) VALUES (?, ?, ?)",
                             [(job.id, i, img.data) for i, img in enumerate(images)])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def get(self, job_id: str) -> Job | None:
        row = self._connect().execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._load(job_id, row[0])

    def recent(self, limit: int = 50) -> list[Job]:
        rows = self._connect().execute(
            "SELECT id, body FROM jobs ORDER BY updated_at DESC LIMIT ?", (limit,)).fetchall()
        return [self._load(job_id, body) for job_id, body in rows]

    def _load(self, job_id: str, body: str) -> Job:
        data = json.loads(body)
        if data.get("result"):
            blobs = self._connect().execute(
                "SELECT data FROM job_images WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
            for image, (blob,) in zip(data["result"]["images"], blobs, strict=True):
                image["data"] = base64.b64encode(blob).decode()
        # JSON mode, so every bytes field (result and request images) decodes from base64.
        return Job.model_validate_json(json.dumps(data))
