"""Which saved Wireflow workflow serves which graph shape, remembered across processes.

A thousand generations must not create a thousand workflows, so the id of the workflow
created for a shape is kept in memory and in a small JSON file,
``<data dir>/wireflow/workflows.json`` (``imagegen._jobstore.default_data_dir()``), where
another process finds it. Entries are keyed by base URL, a fingerprint of the API key
(a hash, never the key: workflows belong to an account) and the shape hash.

Writes re-read the file and replace it atomically, under an advisory lock where the
platform has one; if two processes still race, the worst case is one extra workflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["WorkflowCache", "cache_key"]

FILE_NAME = "workflows.json"


def cache_key(base_url: str, api_key: str | None, shape: str) -> str:
    account = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    return f"{base_url}|{account}|{shape}"


class WorkflowCache:
    """Shape key -> workflow id, in memory and (unless ``path`` is None) in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> WorkflowCache:
        from imagegen.provider import default_data_dir

        return cls(default_data_dir() / "wireflow" / FILE_NAME)

    def get(self, key: str) -> str | None:
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        entry = self._read().get(key)
        workflow_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(workflow_id, str) and workflow_id:
            with self._lock:
                self._memory[key] = workflow_id
            return workflow_id
        return None

    def put(self, key: str, workflow_id: str) -> None:
        with self._lock:
            self._memory[key] = workflow_id
        now = datetime.now(UTC).isoformat()
        self._update(lambda data: data.__setitem__(key, {"id": workflow_id, "created_at": now}))

    def forget(self, key: str) -> None:
        with self._lock:
            self._memory.pop(key, None)
        self._update(lambda data: data.pop(key, None))

    # -- file -------------------------------------------------------------------------------

    def _read(self) -> dict[str, object]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # missing or damaged: the cache only saves work, it never decides
        return data if isinstance(data, dict) else {}

    def _update(self, change: object) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._file_lock():
                data = self._read()
                change(data)  # type: ignore[operator]
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".workflows-", suffix=".json")
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only data dir costs extra workflow creations, not failures

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        assert self.path is not None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: atomic replace only
            yield
            return
        with open(self.path.with_suffix(".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
