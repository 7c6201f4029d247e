"""Per-call cost of the SQLite stores as their history grows: ledger, job store, disk cache.

Each store is filled to 1k, 10k and 100k entries (and a few for the "empty" reference) by
writing rows in its own table format before the store is first opened, so filling takes
seconds and the code under test sees what a long-lived store looks like. Then every round
visits every size in a freshly shuffled order and times ``OPS`` operations on each, so the
machine's noise hits every size alike; a size's figure is the median of its rounds, and its
ratio is that median over the empty store's.

- ledger: ``reserve`` (with daily, monthly and total budgets set) then ``settle``; all rows are
  from today, so every budget period covers them all (the worst case for summing);
- job store: ``put`` of a finished job (one small image) then ``get`` and ``find`` by key;
- disk cache: ``put`` at the size cap then ``get`` of that entry. Entries and new results are
  the same size, so the cache stays at its cap; a cache that evicts in batches does nothing
  for many puts, then much in one, so each size makes enough puts over its rounds to go
  through two whole eviction cycles, and its figure is the mean over all of them
  (the amortised cost), not the median of rounds.

    python -m benchmarks.store_scaling [--sizes 1000,10000,100000] [--rounds 7] [--ops 40] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "store_scaling.md"
EMPTY = 10  # the reference store: a handful of rows, not zero (an empty table is its own case)
#: Bytes per cached image: small, so the figure is the store's bookkeeping, not file writes
#: (a 16x16 test PNG is about this size).
BLOB = 900


def _image_result(seed: int) -> Any:
    from imagegen import Image, ImageResult
    from imagegen.testing import synth_image

    data = synth_image(16, 16, seed=seed)
    return ImageResult(images=[Image.from_bytes(data)], provider="bench", model="m", job_id=f"bench:{seed}")


def fill_ledger(path: Path, rows: int) -> None:
    """Settled charges from today, in the ledger's table format."""
    from imagegen._ledger import _SCHEMA

    now = time.time()
    today = now - (now % 86400)
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA if isinstance(_SCHEMA, str) else ";\n".join(_SCHEMA))
    db.executemany("INSERT INTO ledger (id, at, state, provider, model, job_id, usd, credits, cached, estimated) "
                   "VALUES (?, ?, 'settled', 'bench', 'm', ?, 0.001, NULL, 0, 0)",
                   ((uuid.uuid4().hex, today + (now - today) * i / max(1, rows), f"bench:{i}")
                    for i in range(rows)))
    db.commit()
    db.close()


def fill_jobs(path: Path, rows: int) -> None:
    """Finished jobs with one small in-row image each, in the job store's table format."""
    from imagegen import ImageRequest, Job
    from imagegen._jobstore import _SCHEMA

    result = _image_result(0)
    job = Job(id="bench:x", provider="bench", native_id="x", status="succeeded", result=result,
              request=ImageRequest.build(prompt="a fox"))
    body = json.dumps(job.model_dump(mode="json", exclude={"result": {"images": {"__all__": {"data"}}}}))
    image = result.images[0]
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA)
    stamp = job.updated_at.isoformat()
    db.executemany("INSERT INTO jobs VALUES (?, 'bench', ?, 'succeeded', ?, ?, ?)",
                   ((f"bench:{i}", str(i), uuid.uuid4().hex, body, stamp) for i in range(rows)))
    db.executemany("INSERT INTO job_files VALUES (?, 0, ?, ?)",
                   ((f"bench:{i}", image.sha256, image.data) for i in range(rows)))
    db.commit()
    db.close()


def fill_cache(root: Path, rows: int) -> int:
    """Entries of one ``BLOB``-byte file each, in the disk cache's format; returns the bytes kept."""
    from imagegen._cache import _SCHEMA

    (root / "blobs").mkdir(parents=True)
    db = sqlite3.connect(root / "index.sqlite3")
    db.executescript(_SCHEMA)
    meta = json.dumps({"images": [{"mime_type": "image/png", "width": 16, "height": 16}], "provider": "bench",
                       "model": "m"})
    now = time.time()
    entries = []
    for i in range(rows):
        sha = f"{i:064x}"
        (root / "blobs" / sha[:2]).mkdir(exist_ok=True)
        (root / "blobs" / sha[:2] / sha).write_bytes(b"\0" * BLOB)
        entries.append((uuid.uuid4().hex, meta, json.dumps([sha]), BLOB, now - rows + i, now - rows + i))
    db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", entries)
    db.commit()
    db.close()
    return rows * BLOB


class Subject:
    """One store at one size, and the operation timed on it."""

    def __init__(self, kind: str, size: int, tmp: Path) -> None:
        self.kind, self.size = kind, size
        self.serial = 0
        where = tmp / f"{kind}-{size}"
        where.mkdir()
        if kind == "ledger":
            from imagegen._ledger import BudgetLimits, Ledger

            fill_ledger(where / "ledger.sqlite3", size)
            self.store: Any = Ledger(where / "ledger.sqlite3")
            self.limits = BudgetLimits(daily_usd=1e9, monthly_usd=1e9, total_usd=1e9)
        elif kind == "jobs":
            from imagegen._jobstore import SqliteJobStore

            fill_jobs(where / "jobs.sqlite3", size)
            self.store = SqliteJobStore(where / "jobs.sqlite3")
            self.result = _image_result(1)
        else:
            from imagegen._cache import DiskCache

            kept = fill_cache(where / "cache", size)
            self.store = DiskCache(where / "cache", max_bytes=kept)
            self.results: list[Any] = []  # a new image per put, as generated images are: made ahead
            from imagegen import _cache

            # Puts between two evictions: a batch frees (1 - LOW_WATER) of the cap (a cache
            # without batches evicts at every put).
            self.cycle = int(size * (1 - getattr(_cache, "LOW_WATER", 1.0)))

    def op(self) -> None:
        self.serial += 1
        if self.kind == "ledger":
            held = self.store.reserve(provider="bench", model="m", usd=0.001, limits=self.limits)
            self.store.settle(held, usd=0.001, credits=None, job_id=f"bench:new{self.serial}", cached=False,
                              estimated=False)
        elif self.kind == "jobs":
            from imagegen import ImageRequest, Job

            key = f"k{self.size}-{self.serial}"
            job = Job(id=f"bench:n{self.serial}", provider="bench", native_id=f"n{self.serial}", status="succeeded",
                      result=self.result, request=ImageRequest.build(prompt="a fox", idempotency_key=key))
            self.store.put(job)
            assert self.store.get(job.id) is not None and self.store.find(key) is not None
        else:
            key = uuid.uuid4().hex
            self.store.put(key, self.results[self.serial])
            assert self.store.get(key) is not None

    def prepare(self, puts: int) -> None:
        if self.kind == "cache":
            self.results = [_image_result(self.size * 10**6 + i) for i in range(puts + 1)]

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def measure(kinds: list[str], sizes: list[int], rounds: int, ops: int, seed: int) -> dict[tuple[str, int], dict]:
    shuffle = random.Random(seed).shuffle
    figures: dict[tuple[str, int], dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="imagegen-scaling-") as tmp:
        for kind in kinds:
            started = time.perf_counter()
            subjects = [Subject(kind, size, Path(tmp)) for size in [EMPTY, *sizes]]
            print(f"{kind}: filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            counts = {s.size: ops if kind != "cache" else max(ops, -(-2 * s.cycle // rounds)) for s in subjects}
            for subject in subjects:  # warm: connections, first-open work (e.g. building totals)
                subject.prepare(3 + counts[subject.size] * rounds)
                for _ in range(3):
                    subject.op()
            for _ in range(rounds):
                order = subjects[:]
                shuffle(order)
                for subject in order:
                    count = counts[subject.size]
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(count):
                        subject.op()
                    spot = figures.setdefault((kind, subject.size), {"wall": [], "cpu": [], "ops": []})
                    spot["wall"].append(time.perf_counter() - wall)
                    spot["cpu"].append(time.process_time() - cpu)
                    spot["ops"].append(count)
            for subject in subjects:
                subject.close()
    return {key: _summary(key[0], spot) for key, spot in figures.items()}


def _summary(kind: str, spot: dict[str, list[float]]) -> dict[str, float]:
    if kind == "cache":  # amortised: every op of every round, eviction batches included
        return {name: sum(spot[name]) / sum(spot["ops"]) for name in ("wall", "cpu")}
    return {name: statistics.median(t / n for t, n in zip(spot[name], spot["ops"], strict=True))
            for name in ("wall", "cpu")}


OPERATIONS = {"ledger": "reserve + settle (3 budgets)", "jobs": "put + get + find",
              "cache": "put at the cap (evicts) + get"}


def table(results: dict[tuple[str, int], dict], kinds: list[str], sizes: list[int]) -> str:
    lines = ["| store | operation | entries | ms per op (wall) | ratio | ms per op (CPU) | ratio |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for kind in kinds:
        base = results[(kind, EMPTY)]
        for size in [EMPTY, *sizes]:
            spot = results[(kind, size)]
            lines.append(f"| {kind} | {OPERATIONS[kind]} | {size:,} | {spot['wall'] * 1000:.3f} | "
                         f"{spot['wall'] / base['wall']:.2f} | {spot['cpu'] * 1000:.3f} | "
                         f"{spot['cpu'] / base['cpu']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="ledger,jobs,cache")
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results = measure(kinds, sizes, args.rounds, args.ops, args.seed)
    command = "python -m benchmarks.store_scaling " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# Store scaling: per-call cost at 1k, 10k and 100k entries\n\nCommand: `{command.strip()}` "
            f"({os.cpu_count()} cores, shared with other work; each round times {args.ops} operations per size, "
            f"sizes in shuffled order; medians of {args.rounds} rounds; ratio = over the {EMPTY}-entry store).\n\n"
            f"{table(results, kinds, sizes)}\n")
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
