"""What a batch line *is*, for resuming: its idempotency key comes from the request's content.

A line's key is a hash of what it asks for (``imagegen._claims.request_fingerprint``: prompt,
provider, size, ratio, ...) and of how many identical lines came before it in the file, never
of the file's name or the line's position. So:

- editing, reordering, prepending or deleting lines does exactly the new work: every line whose
  request was done before (by this file, another file, or another batch on the same job store)
  is recognised by its key, and either skipped (its result line is in ``batch.jsonl``) or
  returned from the job store without paying again;
- two batches running on one file at once claim the same keys: each prompt is paid for once;
- two identical lines are two images (the second occurrence has a key of its own).

The prompts file's format is parsed elsewhere (``_prompts.read_prompt_file``); this module only
keys the requests built from it and reads back what an earlier run finished.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._batch_keys import batch_key, batch_keys
from .._models import ImageRequest
from ._prompts import PromptLine

__all__ = ["BatchItem", "batch_key", "finished_keys", "keyed_items"]


@dataclass(frozen=True)
class BatchItem:
    """One line of a batch: where it is in this run's file, its prompt, and its keyed request."""

    index: int
    prompt: str
    request: ImageRequest

    @property
    def key(self) -> str:
        return self.request.idempotency_key or ""


def keyed_items(lines: Iterable[PromptLine | str], fields: dict[str, Any]) -> list[BatchItem]:
    """One keyed request per prompt-file line, or plain prompt (``fields``: the command-line options,
    under each line's own)."""
    parsed = [PromptLine(Path("<prompts>"), index + 1, {"prompt": line}) if isinstance(line, str) else line
              for index, line in enumerate(lines)]
    requests = [line.request(fields) for line in parsed]
    # The fleet keys its items with the same function: a file run here and on a fleet pays once.
    return [BatchItem(index, line.prompt, request.model_copy(update={"idempotency_key": key}))
            for index, (line, request, key) in enumerate(zip(parsed, requests, batch_keys(requests), strict=True))]


def finished_keys(results: Path, items: list[BatchItem]) -> set[str]:
    """The keys of ``items`` an earlier run finished, read from its ``batch.jsonl``.

    Lines written before keys were recorded name only a prompt: each such line counts for the
    first unfinished item with that prompt.
    """
    done: set[str] = set()
    legacy: Counter[str] = Counter()
    if not results.exists():
        return done
    for raw in results.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a crash
        if record.get("status") != "succeeded":
            continue
        if record.get("key"):
            done.add(record["key"])
        elif isinstance(record.get("prompt"), str):
            legacy[record["prompt"]] += 1
    for item in items:
        if item.key not in done and legacy[item.prompt] > 0:
            legacy[item.prompt] -= 1
            done.add(item.key)
    return done
