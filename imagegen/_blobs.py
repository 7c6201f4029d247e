"""Content-addressed image files, shared by the disk cache and the SQLite job store.

Each store keeps its own directory (``<root>/<sha[:2]>/<sha>``), written once: to a temporary
name, then renamed into place, so a reader never sees half a file and several processes may
write the same image. When another store already holds the same bytes on the same file system,
the file is hard-linked instead of written again: a generated image lands on disk once however
many stores keep it, and each store deletes only its own name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BlobDir"]


class BlobDir:
    """Immutable files named by the SHA-256 of their bytes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        #: Other stores' directories a file may be linked from rather than written again.
        self.siblings: list[BlobDir] = []

    def path(self, sha: str) -> Path:
        return self.root / sha[:2] / sha

    def put(self, sha: str, data: bytes) -> None:
        """Keep ``data`` under ``sha`` (the caller's hash of it); a no-op when it is already kept."""
        target = self.path(sha)
        if target.exists():
            return
        target.parent.mkdir(exist_ok=True)
        for sibling in self.siblings:
            try:
                os.link(sibling.path(sha), target)
                return
            except FileExistsError:
                return
            except OSError:
                continue  # not there, another file system, or links not allowed: write it
        tmp = target.with_name(f"{sha}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def read(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def names(self) -> Iterator[Path]:
        """Every kept file (temporary files being written are skipped)."""
        return (p for p in self.root.glob("*/*") if not p.name.endswith(".tmp"))
