"""Many requests in flight: imagegen against a bare aiohttp client, in alternate rounds.

A Gemini emulator answering every request in 100 ms runs in a child process (as a real
service would, its CPU is not the client's); tiny images, so the figure is the clients' own
work. Each round runs the bare client and imagegen, in a freshly shuffled order, each
making ``--requests`` generations at most ``--concurrency`` at a time; the ratio is the
median over rounds of imagegen's time over the bare client's in the same round.

- bare aiohttp: one ``aiohttp.ClientSession`` (connector limit = the concurrency), the same
  JSON POST, ``json.loads`` and base64 decoding, nothing else;
- imagegen: ``AsyncClient.generate_many`` with the provider's ``max_concurrency`` set to the
  concurrency, SQLite job store and ledger, and (``--cache disk``) the disk cache: every
  prompt is new, so every result is written to the cache and nothing hits.

Both clients run in this process, one at a time, so the process's CPU time over a round
(``time.process_time()``, every thread) is that client's CPU; the table gives its median per
request. With the emulator on one of two cores, the ratio follows the clients' CPU.

    python -m benchmarks.concurrency [--cases 1000x100,5000x500] [--rounds 5] [--cache disk|off] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.gemini_memory import serving_child

RESULTS = Path(__file__).parent / "results" / "concurrency.md"
BAR = 1.3
LATENCY_S = 0.1
MODEL = "gemini-3-pro-image"


def serve(port: int) -> None:
    """Child process: the Gemini emulator, 100 ms per request, tiny images."""
    from imagegen.testing import LatencyModel, run_forever
    from imagegen_gemini.emulator import GeminiEmulator

    run_forever(GeminiEmulator(latency=LatencyModel(base=LATENCY_S, scale=1.0), image_scale=0.02),
                host="127.0.0.1", port=port)


class Bare:
    """The same requests with nothing but aiohttp, asyncio and decoding."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        import aiohttp

        self.url = f"{base_url}/v1beta/models/{MODEL}:generateContent"
        # Idle connections are dropped after 4 s, before the emulator's server (uvicorn: 5 s) closes
        # them: with aiohttp's 15 s default a round could write into a connection being closed
        # (ClientConnectionResetError, seen once in 7 rounds). imagegen's own expiry is httpx's 5 s.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=4.0),
                                             timeout=aiohttp.ClientTimeout(total=120))

    async def one(self, prompt: str) -> bytes:
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
        async with self.session.post(self.url, json=body, headers={"x-goog-api-key": "bench-key"}) as response:
            response.raise_for_status()
            parts = json.loads(await response.read())["candidates"][0]["content"]["parts"]
        return base64.b64decode(next(p["inlineData"]["data"] for p in parts if "inlineData" in p))

    async def run(self, prompts: list[str], concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> bytes:
            async with gate:
                return await self.one(prompt)

        images = await asyncio.gather(*(one(p) for p in prompts))
        assert all(images)

    async def aclose(self) -> None:
        await self.session.close()


class Imagegen:
    def __init__(self, base_url: str, concurrency: int, cache: str, tmp: Path) -> None:
        from imagegen import AsyncClient

        self.client = AsyncClient({
            "providers": {"gemini": {"base_url": base_url, "api_key": "bench-key", "max_concurrency": concurrency}},
            "jobs": {"backend": "sqlite", "path": str(tmp / "jobs.sqlite3")},
            "ledger": {"backend": "sqlite", "path": str(tmp / "ledger.sqlite3")},
            "cache": {"backend": cache, "path": str(tmp / "cache")}})

    async def run(self, prompts: list[str], concurrency: int) -> None:
        from imagegen import ImageRequest

        requests = [ImageRequest.build(prompt=p, provider="gemini", model=MODEL) for p in prompts]
        outcomes = await self.client.generate_many(requests, concurrency=concurrency)
        failures = [o for o in outcomes if not hasattr(o, "images")]
        if failures:
            raise SystemExit(f"imagegen: {len(failures)} failures, first: {failures[0]!r}")
        await self.client.flush()  # its background writes are part of its work

    async def aclose(self) -> None:
        await self.client.aclose()


async def measure_case(base_url: str, requests: int, concurrency: int, rounds: int, cache: str,
                       seed: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="imagegen-concurrency-") as tmp:
        subjects: dict[str, Any] = {"bare aiohttp": Bare(base_url, concurrency),
                                    "imagegen": Imagegen(base_url, concurrency, cache, Path(tmp))}
        for subject in subjects.values():  # warm: imports, connections
            await subject.run([f"warm {uuid.uuid4().hex}" for _ in range(concurrency)], concurrency)
        times: dict[str, list[float]] = {name: [] for name in subjects}
        cpu: dict[str, list[float]] = {name: [] for name in subjects}
        shuffle = random.Random(seed).shuffle
        for _ in range(rounds):
            order = list(subjects)
            shuffle(order)
            for name in order:
                prompts = [f"a fox {uuid.uuid4().hex}" for _ in range(requests)]
                started, cpu_started = time.perf_counter(), time.process_time()
                await subjects[name].run(prompts, concurrency)
                times[name].append(time.perf_counter() - started)
                # This process's CPU (every thread: imagegen's store writers too) per request.
                cpu[name].append((time.process_time() - cpu_started) / requests * 1000)
        for subject in subjects.values():
            await subject.aclose()
    return {**times, **{f"{name} cpu": values for name, values in cpu.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="1000x100,5000x500", help="REQUESTSxCONCURRENCY, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", choices=["disk", "off"], default="disk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return
    lines = ["| requests x concurrency | bare aiohttp median s | imagegen median s | imagegen / bare (paired) | "
             "ideal s | bare CPU ms/request | imagegen CPU ms/request | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    with serving_child("benchmarks.concurrency") as base_url:
        for case in args.cases.split(","):
            requests, concurrency = (int(x) for x in case.split("x"))
            times = asyncio.run(measure_case(base_url, requests, concurrency, args.rounds, args.cache, args.seed))
            paired = statistics.median(o / b for o, b in zip(times["imagegen"], times["bare aiohttp"], strict=True))
            verdict = "met" if paired <= BAR else "NOT met"
            lines.append(f"| {requests:,} x {concurrency} | {statistics.median(times['bare aiohttp']):.3f} | "
                         f"{statistics.median(times['imagegen']):.3f} | {paired:.2f} | "
                         f"{requests / concurrency * LATENCY_S:.3f} | "
                         f"{statistics.median(times['bare aiohttp cpu']):.2f} | "
                         f"{statistics.median(times['imagegen cpu']):.2f} | {verdict} (bar {BAR}x) |")
            print(lines[-1], file=sys.stderr)
    command = "python -m benchmarks.concurrency " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"# Concurrency: imagegen against a bare aiohttp client\n\nCommand: `{command.strip()}` "
            f"({os.cpu_count()} cores, shared with other work; Gemini emulator in a child process answering in "
            f"{LATENCY_S * 1000:.0f} ms; the two clients alternate rounds in shuffled order, medians of "
            f"{args.rounds} rounds; cache = {args.cache}).\n\n" + "\n".join(lines) + "\n")
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
