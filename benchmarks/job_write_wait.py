"""How long a call waits for the job store to record its finished job, with its image.

A call returns once its job is recorded (and its charge): the job store's future must resolve.
Two ways of writing the same job, in alternate rounds on one SQLite job store:

- ``whole``: record, image file (SHA-256 of the bytes, then the file) and image rows in one
  transaction, the call waiting for all of it (``SqliteJobStore._write``, as before the change);
- ``record first``: ``SqliteJobStore.asubmit_put``, what the call path uses: the record in one
  transaction (the call waits for it), the image file and rows in the next one.

Each size is measured with the same bytes every call (as in ``benchmarks.gemini_overhead``,
whose emulator answers every call with one image, so the file is already there after the first
call) and with new bytes every call (as generated images are: the file is written every time).
The writes queued ``later`` are flushed before the next round, outside the timing.

    python -m benchmarks.job_write_wait [--rounds 30] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "job_write_wait.md"
SIZES = {"1K": (1376, 768), "4K": (5504, 3072)}


async def measure(size: str, rounds: int, unique: bool) -> dict[str, float]:
    from benchmarks.gemini_memory import photo_like_jpeg
    from imagegen import Image, ImageRequest, ImageResult, Job
    from imagegen._jobstore import SqliteJobStore

    width, height = SIZES[size]
    photo = photo_like_jpeg(width, height, seed=width * height)
    store = SqliteJobStore(Path(tempfile.mkdtemp(prefix="imagegen-job-wait-")) / "jobs.sqlite3")
    request = ImageRequest.build(prompt="a harbour at dawn", size=size)
    waits: dict[str, list[float]] = {"whole": [], "record first": []}
    for serial in range(rounds):
        for way in waits:
            data = photo + os.urandom(8) if unique else bytes(photo)  # a new bytes object: no hash memo
            image = Image(data=data, mime_type="image/jpeg", width=width, height=height)
            job_id = f"bench:{way.replace(' ', '-')}-{serial}"
            result = ImageResult(images=[image], provider="bench", model="m", job_id=job_id)
            job = Job(id=job_id, provider="bench", native_id=job_id, status="succeeded", request=request,
                      result=result)
            started = time.perf_counter()
            if way == "whole":
                await store._writer.asubmit(functools.partial(store._write, job), key=job.id)
            else:
                await store.asubmit_put(job)
            waits[way].append(time.perf_counter() - started)
            await store.aflush()
    store.close()
    return {way: statistics.median(times) * 1000 for way, times in waits.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    args = parser.parse_args(argv)
    rows = []
    for size in SIZES:
        for unique in (False, True):
            waits = asyncio.run(measure(size, args.rounds, unique))
            bytes_label = "new bytes every call" if unique else "the same bytes every call"
            rows.append(f"| {size} | {bytes_label} | {waits['whole']:.2f} | {waits['record first']:.2f} | "
                        f"{waits['whole'] / waits['record first']:.1f}x |")
    command = "python -m benchmarks.job_write_wait " + " ".join(argv if argv is not None else sys.argv[1:])
    text = "\n".join([
        "# How long a call waits for its job to be recorded", "",
        f"Command: `{command.strip()}` (2 cores, shared with other work; medians of {args.rounds} rounds, the two "
        "ways alternating; a SQLite job store on the local disk; 1K = 0.44 MB, 4K = 7.09 MB JPEG).", "",
        "| size | image | whole write, ms | record first, ms | less waiting |",
        "|---|---|---:|---:|---:|", *rows, ""])
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
