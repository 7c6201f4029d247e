"""Where a fleet's results go: a directory every worker can write (shared storage), or an
fsspec URL such as ``s3://bucket/prefix`` (the ``fleet`` extra installs fsspec and s3fs).

Each image is written under a name derived from its prompt's index, so a prompt finished
twice (a redelivery after a crash) overwrites the same file instead of leaving a stray one.
The batch's ``batch.jsonl`` is assembled from the outcomes every worker recorded in Redis.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from .._models import ImageResult

__all__ = ["ResultStorage", "is_url", "read_results"]

RESULTS_NAME = "batch.jsonl"


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


class ResultStorage:
    """A local directory or an fsspec location; ``storage_options`` go to fsspec."""

    def __init__(self, location: str, storage_options: dict[str, Any] | None = None) -> None:
        self.location = location.rstrip("/")
        self._fs: Any = None
        self._root = self.location
        if is_url(location):
            try:
                import fsspec
            except ImportError:  # pragma: no cover - depends on the install
                from .._errors import ConfigurationError

                raise ConfigurationError(f"--out {location} needs fsspec (and s3fs for s3://): "
                                         "pip install 'imagegen[fleet]'") from None
            self._fs, self._root = fsspec.core.url_to_fs(self.location, **(storage_options or {}))
            self._root = self._root.rstrip("/")
        else:
            self._root = str(Path(location.removeprefix("file://")).expanduser().resolve())

    def path(self, name: str) -> str:
        """Where ``name`` lives, as a user would write it (a path or a URL)."""
        if self._fs is None:
            return os.path.join(self._root, name)
        return f"{self.location}/{name}"

    def write(self, name: str, data: bytes) -> str:
        if self._fs is None:
            target = Path(self._root, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Unique per write, not per process: two tasks of one worker may write the same name at once.
            partial = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.part")
            partial.write_bytes(data)
            os.replace(partial, target)  # readers never see half a file
        else:
            self._fs.pipe_file(f"{self._root}/{name}", data)  # one PUT: all or nothing
        return self.path(name)

    def read(self, name: str) -> bytes:
        if self._fs is None:
            return Path(self._root, name).read_bytes()
        return bytes(self._fs.cat_file(f"{self._root}/{name}"))

    def save_images(self, result: ImageResult, stem: str) -> list[dict[str, Any]]:
        """Write the result's images as ``images/<stem>-<k>.<ext>``; the rows for its JSON line."""
        rows = []
        for k, image in enumerate(result.images):
            where = self.write(f"images/{stem}-{k}.{image.extension}", image.data)
            rows.append({"path": where, "mime_type": image.mime_type, "width": image.width,
                         "height": image.height, "sha256": image.sha256, "url": image.url})
        return rows


def read_results(location: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The lines of the ``batch.jsonl`` at ``location`` (a done batch's results, once Redis has let
    them go)."""
    import json

    from .._errors import StorageError

    storage = ResultStorage(location, storage_options)
    try:
        body = storage.read(RESULTS_NAME)
    except (OSError, ValueError) as exc:  # fsspec raises FileNotFoundError/PermissionError (OSError)
        raise StorageError(f"the batch's results are kept only in {storage.path(RESULTS_NAME)}, which could "
                           f"not be read ({exc}); check that location is reachable from here",
                           store="results") from exc
    return [json.loads(line) for line in body.decode().splitlines() if line]
