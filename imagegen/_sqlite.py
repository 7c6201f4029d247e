"""One SQLite connection per thread, shared by the job store, the ledger and the disk cache.

WAL lets several processes read while one writes; ``synchronous=NORMAL`` makes a commit
survive the process dying (not a power cut) without an fsync per write; autocommit mode
(``isolation_level=None``) leaves transactions to the callers' explicit ``BEGIN``.
"""

from __future__ import annotations

import os
import sqlite3
import threading

__all__ = ["ThreadConnections"]


class ThreadConnections:
    """Hands each thread its own connection to one database file (sqlite3 objects are per thread)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn
