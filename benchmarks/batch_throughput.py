"""200 generations at concurrency 20 against emulators answering in 100 ms, against the ideal
and against a bare client run side by side.

The ideal is requests / concurrency x latency (200 / 20 x 0.1 s = 1.0 s): what a client with
zero overhead would take. A bare client (plain httpx, asyncio, the same HTTP requests, the
images decoded or downloaded, nothing else) takes the same rounds in turn with imagegen
against the same emulator process, so the machine's noise hits both; its ratio says what
imagegen adds on top (planning, validation, retry bookkeeping, the job store, the ledger,
probing every image).

    python -m benchmarks.batch_throughput [--requests 200] [--concurrency 20] [--latency 0.1] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from imagegen import Client, ImageRequest

RESULTS = Path(__file__).parent / "results" / "batch_throughput.md"


#: Emulator options: small images, so the measure is imagegen's overhead, not JPEG encoding.
EMULATORS = {
    "gemini": ["--option", "image_scale=0.05"],
    "nanobanana2": ["--option", "image_scale=0.05", "--option", "initial_credits=1000000000"],
}


@contextmanager
def emulator_process(provider: str, latency: float) -> Iterator[str]:
    """The emulator in its own process (as in production, the server's CPU is not the client's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "IMAGEGEN_EMULATOR_TIME_SCALE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "imagegen", "emulate", provider, "--port", str(port),
                             "--latency", str(latency), *EMULATORS[provider]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_once(provider: str, latency: float, requests: int, concurrency: int, store: Path,
             base_url: str | None = None) -> float:
    """One round of imagegen (the sync ``Client``, as ``imagegen batch`` uses it)."""
    if base_url is None:
        with emulator_process(provider, latency) as url:
            return run_once(provider, latency, requests, concurrency, store, url)
    config = {"providers": {provider: {"base_url": base_url, "api_key": "bench-key"}},
              "jobs": {"backend": "sqlite", "path": str(store)},
              # Off: the prompts repeat across rounds, and cache hits are not throughput.
              "cache": {"backend": "off"}}
    with Client(config) as client:
        batch = [ImageRequest.build(prompt=f"a fox, take {i}", provider=provider) for i in range(requests)]
        started = time.perf_counter()
        outcomes = client.generate_many(batch, concurrency=concurrency)
        elapsed = time.perf_counter() - started
    failures = [o for o in outcomes if not hasattr(o, "images")]
    if failures:
        raise SystemExit(f"{provider}: {len(failures)} failures, first: {failures[0]}")
    return elapsed


async def _bare_gemini(http: httpx.AsyncClient, base_url: str, prompt: str) -> bytes:
    body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
    from imagegen_gemini import GeminiProvider

    model = GeminiProvider.default_model()  # the model imagegen asks for
    response = await http.post(f"{base_url}/v1beta/models/{model}:generateContent", json=body,
                               headers={"x-goog-api-key": "bench-key"})
    response.raise_for_status()
    parts = json.loads(response.content)["candidates"][0]["content"]["parts"]
    return base64.b64decode(next(p["inlineData"]["data"] for p in parts if "inlineData" in p))


async def _bare_nanobanana2(http: httpx.AsyncClient, base_url: str, prompt: str) -> bytes:
    response = await http.post(f"{base_url}/api/v1/generate", json={"prompt": prompt, "num_outputs": 1},
                               headers={"Authorization": "Bearer bench-key"})
    response.raise_for_status()
    generation = response.json()
    if generation["status"] != "completed":
        raise SystemExit(f"nanobanana2 answered {generation['status']!r}: the bare client expects sync mode")
    image = await http.get(generation["outputs"][0]["url"])
    image.raise_for_status()
    return image.content


BARE = {"gemini": _bare_gemini, "nanobanana2": _bare_nanobanana2}


def run_bare(provider: str, base_url: str, requests: int, concurrency: int) -> float:
    """One round of the bare client: the same requests, nothing but HTTP and decoding."""

    async def run() -> float:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=60) as http:
            async def one(i: int) -> bytes:
                async with gate:
                    return await BARE[provider](http, base_url, f"a fox, take {i}")

            started = time.perf_counter()
            images = await asyncio.gather(*(one(i) for i in range(requests)))
            elapsed = time.perf_counter() - started
        assert all(images), provider
        return elapsed

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    ideal = args.requests / args.concurrency * args.latency
    import tempfile

    lines = ["| provider | imagegen median s | bare httpx median s | imagegen / bare (paired rounds) | ideal s | "
             "imagegen / ideal |",
             "|---|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for provider in EMULATORS:
            ours: list[float] = []
            bare: list[float] = []
            with emulator_process(provider, args.latency) as base_url:
                # Warm both (first calls import modules and open pools), then alternate rounds.
                run_bare(provider, base_url, args.concurrency, args.concurrency)
                run_once(provider, args.latency, args.concurrency, args.concurrency, Path(tmp) / "warm.db", base_url)
                for i in range(args.rounds):
                    bare.append(run_bare(provider, base_url, args.requests, args.concurrency))
                    ours.append(run_once(provider, args.latency, args.requests, args.concurrency,
                                         Path(tmp) / f"{provider}{i}.db", base_url))
            mine, theirs = statistics.median(ours), statistics.median(bare)
            # Each round pairs the two runs back to back: the median of those ratios is steadier
            # than a ratio of medians when the machine's speed drifts between rounds.
            paired = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
            lines.append(f"| {provider} | {mine:.3f} | {theirs:.3f} | {paired:.2f} | {ideal:.3f} | "
                         f"{mine / ideal:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python -m benchmarks.batch_throughput " + " ".join(sys.argv[1:] if argv is None else argv)
        RESULTS.write_text(f"# Batch throughput\n\n{args.requests} generations at concurrency {args.concurrency}, "
                           f"emulators answering in {args.latency * 1000:.0f} ms (in their own process), "
                           f"median of {args.rounds} rounds; imagegen and a bare httpx client take turns against "
                           f"the same emulator ({os.cpu_count()} cores).\n\n"
                           f"Command: `{command.strip()}`\n\n{table}\n")


if __name__ == "__main__":
    main()
