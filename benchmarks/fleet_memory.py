"""What a finished fleet batch keeps in Redis: its keys' ``MEMORY USAGE``, outcomes kept vs released.

A batch of ``--prompts`` prompts goes through ``BatchQueue`` as workers drive it (submit, read,
record an outcome line shaped like a real one - a Gemini result with one image row - and
acknowledge), against a redis-server of its own; then the batch's keys are measured, its
outcomes released (``BatchQueue.release_outcomes``, what the worker that writes ``batch.jsonl``
does), and measured again. No vendor and no worker process: this is about Redis memory only.

    python -m benchmarks.fleet_memory [--prompts 10000] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fleet_memory.md"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _outcome(i: int) -> dict[str, Any]:
    return {"index": i, "prompt": f"a product shot of item {i} on white", "key": f"batch-{i:032x}",
            "status": "succeeded", "job_id": f"gemini:{i:040x}", "provider": "gemini", "model": "gemini-3-pro-image",
            "cost_usd": 0.134, "cost_estimated": False, "cached": False, "latency_s": 0.2345,
            "images": [{"path": f"/data/out/images/{i:05d}-0.png", "mime_type": "image/png", "width": 1024,
                        "height": 1024, "sha256": "f" * 64, "url": None}], "worker": "host-1234"}


async def _measure(url: str, prompts: int) -> tuple[dict[str, int], dict[str, int]]:
    import redis.asyncio as redis_asyncio

    from imagegen import ImageRequest
    from imagegen.fleet._queue import BatchQueue

    redis = redis_asyncio.Redis.from_url(url)
    queue = BatchQueue(redis, prefix="bench:")
    items = ((i, f"batch-{i:032x}", ImageRequest.build(prompt=f"a product shot of item {i} on white",
                                                       provider="gemini")) for i in range(prompts))
    await queue.submit("b1", items, out="/data/out", total=prompts)
    for i in range(prompts):
        [(_, entry_id, _fields)] = await queue.read(["b1"], "w", 1, block_ms=10)
        await queue.record("b1", i, _outcome(i))
        await queue.ack("b1", entry_id)

    async def usage() -> dict[str, int]:
        keys = sorted(k.decode() for k in await redis.keys("bench:b:b1:*"))
        return {k.removeprefix("bench:b:b1:"): int(await redis.memory_usage(k) or 0) for k in keys}

    kept = await usage()
    await queue.release_outcomes("b1")
    released = await usage()
    await redis.aclose()
    return kept, released


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10_000)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed")
    port = _free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                               "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        kept, released = asyncio.run(_measure(f"redis://127.0.0.1:{port}/0", args.prompts))
    finally:
        server.terminate()
        server.wait(timeout=10)
    keys = sorted(set(kept) | set(released))
    rows = [f"| `{k}` | {kept.get(k, 0):,} | {released.get(k, 0):,} |" for k in keys]
    table = "\n".join([
        f"# Redis memory of a finished fleet batch ({args.prompts:,} prompts)", "",
        f"`python -m benchmarks.fleet_memory --prompts {args.prompts} --write` (`MEMORY USAGE` of each key of "
        "the batch, bytes).", "",
        "| key | outcomes kept (before) | outcomes released (now, once batch.jsonl is written) |",
        "|---|---:|---:|", *rows,
        f"| **total** | **{sum(kept.values()):,}** | **{sum(released.values()):,}** |", "",
        f"Per prompt before: {sum(kept.values()) / args.prompts:,.0f} B, kept 7 days after the batch ended. "
        "While a batch runs its finished outcomes are still in Redis (the running case is not bounded).", ""])
    print(table)
    if args.write:
        RESULTS.write_text(table)


if __name__ == "__main__":
    main()
