"""What a full garbage collection costs once a client has made its first call, with and without
``gc.freeze()`` (which ``AsyncClient`` does when it makes its first provider).

A warm ``AsyncClient`` (default stores, the Gemini emulator in a child process) has imported
google-genai, pydantic's schemas and the rest: ~110k long-lived objects that every full
collection walks, although none of them is ever garbage. Frozen, they are left out. The
script times ``gc.collect()`` ``--reps`` times each way, alternating, in one process.

    IMAGEGEN_GC_FREEZE=0 python -m benchmarks.gc_pauses [--reps 9] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gemini_memory import serving_child

RESULTS = Path(__file__).parent / "results" / "gc_pauses.md"


async def warm_client(base_url: str) -> None:
    from imagegen import AsyncClient

    tmp = Path(tempfile.mkdtemp(prefix="imagegen-gc-"))
    async with AsyncClient({"providers": {"gemini": {"base_url": base_url, "api_key": "bench-key"}},
                            "jobs": {"path": str(tmp / "jobs.sqlite3")}, "cache": {"path": str(tmp / "cache")},
                            "ledger": {"path": str(tmp / "ledger.sqlite3")}}) as client:
        await client.generate("warm", provider="gemini")


def full_collection_ms() -> float:
    started = time.perf_counter()
    gc.collect()
    return (time.perf_counter() - started) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        from benchmarks.full_stores import serve

        serve(args.serve)
        return
    with serving_child("benchmarks.gc_pauses") as base_url:
        asyncio.run(warm_client(base_url))
    gc.unfreeze()  # measured both ways below, whatever the client did
    times: dict[str, list[float]] = {"not frozen": [], "frozen": []}
    for _ in range(args.reps):
        times["not frozen"].append(full_collection_ms())
        gc.freeze()
        times["frozen"].append(full_collection_ms())
        gc.unfreeze()
    objects = len(gc.get_objects())
    command = "python -m benchmarks.gc_pauses " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = ["# A full garbage collection after a client's first call", "",
             f"Command: `{command.strip()}` ({os.cpu_count()} cores, shared with other work; {objects:,} objects "
             f"tracked after a warm Gemini call; {args.reps} alternating repetitions).", "",
             "| objects | median ms | max ms |", "|---|---:|---:|"]
    for name, values in times.items():
        lines.append(f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
