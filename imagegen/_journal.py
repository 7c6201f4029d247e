"""The charge journal: charges the ledger could not take, kept locally until it can.

After a paid call, a ledger that cannot be written (SQLite locked or on a full disk, Redis
down) must not lose the charge. It is appended to a journal instead: one JSON line per
change, written with ``fsync``, in ``<data dir>/journal/`` (``IMAGEGEN_DATA_DIR``), or in a
directory of the system's temporary directory when the data directory cannot be written.
Each ledger has its own file (named by a hash of where the ledger lives), so a journal is
replayed into the ledger it was meant for, when a client using that ledger next starts.

Replaying is safe to repeat: every line carries the charge's identity (its entry id, job id
and idempotency key), and the ledger updates a charge it already has. A replay moves the file
aside under a lock first, so lines appended meanwhile go to a new file, and a replay cut short
is finished by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._errors import StorageError

__all__ = ["ChargeJournal", "journal_for"]

log = logging.getLogger("imagegen")
_REPLAYING = ".replaying"


def _ledger_name(ledger: Any) -> str | None:
    """Where a ledger lives, as a stable string; None for an in-memory ledger (nothing to replay into)."""
    path = getattr(ledger, "path", None)
    if path is not None:
        return None if path == ":memory:" else f"sqlite:{Path(path).resolve()}"
    redis = getattr(ledger, "_redis", None)
    if redis is not None:
        kwargs = redis.connection_pool.connection_kwargs
        return f"redis:{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}:{getattr(ledger, 'prefix', '')}"
    return None


class ChargeJournal:
    """An append-only, fsync'd file of charge records for one ledger."""

    def __init__(self, name: str, directories: list[Path]) -> None:
        self.file_name = f"charges-{hashlib.sha256(name.encode()).hexdigest()[:16]}.jsonl"
        self.directories = directories

    def append(self, record: dict[str, Any]) -> Path:
        """Write ``record`` durably; returns the file. Raises ``StorageError`` when no directory takes it."""
        line = (json.dumps({"v": 1, "written_at": time.time(), **record}, default=str) + "\n").encode()
        faults = []
        for directory in self.directories:
            path = directory / self.file_name
            try:
                directory.mkdir(parents=True, exist_ok=True)
                with self._locked(directory):
                    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    try:
                        os.write(fd, line)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                return path
            except OSError as exc:
                faults.append(f"{directory}: {exc.strerror or exc}")
        raise StorageError("the charge journal could not be written (" + "; ".join(faults) + ")", store="journal")

    def replay(self, ledger: Any) -> int:
        """Apply every journalled record to ``ledger``; returns how many. A file the ledger cannot
        take yet is kept for the next start (and a warning logged)."""
        applied = 0
        for directory in self.directories:
            for path in self._claim_files(directory):
                try:
                    applied += self._apply(path, ledger)
                except Exception as exc:  # the ledger is still unwell: try again next start
                    log.warning("imagegen could not replay the charge journal %s into the ledger yet (%s: %s); "
                                "it is kept and replayed at the next start", path, type(exc).__name__, exc)
                    continue
                path.unlink(missing_ok=True)
        return applied

    def pending(self) -> list[Path]:
        """Journal files waiting to be replayed (for tests and ``imagegen cost``)."""
        found = []
        for directory in self.directories:
            found += [p for p in (directory / self.file_name, *directory.glob(self.file_name + _REPLAYING + "*"))
                      if p.exists()]
        return found

    def _claim_files(self, directory: Path) -> list[Path]:
        """Move the live file aside (under the lock) and return it with any left by a cut-short replay."""
        live = directory / self.file_name
        if not live.exists() and not any(directory.glob(self.file_name + _REPLAYING + "*")):
            return []
        try:
            with self._locked(directory):
                if live.exists():
                    live.rename(live.with_name(f"{self.file_name}{_REPLAYING}-{os.getpid()}-{time.time_ns()}"))
        except OSError as exc:
            log.warning("imagegen cannot replay the charge journal in %s (%s)", directory, exc)
            return []
        return sorted(directory.glob(self.file_name + _REPLAYING + "*"))

    @staticmethod
    def _apply(path: Path, ledger: Any) -> int:
        count = 0
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # a line cut short by a crash mid-append: its charge was never journalled
            op = record.pop("op", "charge")
            if op == "void":
                ledger.void(job_id=record["job_id"], key=record.get("key"))
            else:
                ledger.record(provider=record["provider"], model=record.get("model"), usd=record["usd"],
                              credits=record.get("credits"), job_id=record.get("job_id"),
                              cached=False, estimated=record.get("estimated", True), key=record.get("key"),
                              entry_id=record.get("entry_id"), at=record.get("at"),
                              reservation=record.get("reservation"))
            count += 1
        return count

    @contextlib.contextmanager
    def _locked(self, directory: Path) -> Iterator[None]:
        if sys.platform == "win32":  # pragma: no cover - no flock: appends and replays are not serialised
            yield
            return
        import fcntl

        fd = os.open(directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def journal_for(ledger: Any) -> ChargeJournal:
    """The journal of ``ledger``: in the data directory, else in a temporary directory."""
    from ._jobstore import default_data_dir

    name = _ledger_name(ledger) or f"memory:{os.getpid()}:{id(ledger)}"
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = Path(tempfile.gettempdir()) / f"imagegen-{uid}" / "journal"
    return ChargeJournal(name, [default_data_dir() / "journal", fallback])
