"""Content-addressed image files, shared by the disk cache and the SQLite job store.

Each store keeps its own directory (``<root>/<sha[:2]>/<sha>``), written once: to a temporary
name, then renamed into place, so a reader never sees half a file and several processes may
write the same image. When another store already holds the same bytes on the same file system,
the file is hard-linked instead of written again: a generated image lands on disk once however
many stores keep it, and each store deletes only its own name.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["BlobDir"]

#: sha -> set once the file being written under that name (by any store of this process) is in place.
_WRITING: dict[str, threading.Event] = {}
_WRITING_LOCK = threading.Lock()


@contextlib.contextmanager
def _writing(sha: str) -> Iterator[None]:
    """Write ``sha``'s file alone in this process: the job store's writer and the cache's may be
    given the same image at the same moment, and the second should link the first's file rather
    than write the bytes again."""
    while True:
        with _WRITING_LOCK:
            busy = _WRITING.get(sha)
            if busy is None:
                _WRITING[sha] = mine = threading.Event()
                break
        busy.wait()
    try:
        yield
    finally:
        with _WRITING_LOCK:
            del _WRITING[sha]
        mine.set()


class BlobDir:
    """Immutable files named by the SHA-256 of their bytes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self._made: set[str] = set()  # subdirectories known to exist
        #: Other stores' directories a file may be linked from rather than written again.
        self.siblings: list[BlobDir] = []

    def path(self, sha: str) -> Path:
        return Path(self._name(sha))

    def _name(self, sha: str) -> str:
        # Plain strings and os calls: this runs on every stored image.
        return os.path.join(self._root, sha[:2], sha)

    def put(self, sha: str, data: bytes) -> None:
        """Keep ``data`` under ``sha`` (the caller's hash of it); a no-op when it is already kept."""
        target = self._name(sha)
        if os.path.exists(target):
            return
        if sha[:2] not in self._made:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self._made.add(sha[:2])
        with _writing(sha):  # a sibling writing the same bytes right now: its file is linked
            self._put(sha, data, target)

    def _put(self, sha: str, data: bytes, target: str) -> None:
        for sibling in self.siblings:
            try:
                os.link(sibling._name(sha), target)
                return
            except FileExistsError:
                return
            except OSError:
                continue  # not there, another file system, or links not allowed: write it
        tmp = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    def remove(self, sha: str) -> None:
        """Delete this store's name for ``sha`` (a linked copy elsewhere stays); gone already is fine."""
        try:
            os.unlink(self._name(sha))
        except FileNotFoundError:
            pass

    def read(self, sha: str) -> bytes:
        with open(self._name(sha), "rb") as source:
            return source.read()

    def names(self) -> Iterator[Path]:
        """Every kept file (temporary files being written are skipped)."""
        return (p for p in self.root.glob("*/*") if not p.name.endswith(".tmp"))
