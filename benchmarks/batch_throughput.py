"""200 generations at concurrency 20 against emulators answering in 100 ms, against the ideal.

The ideal is requests / concurrency x latency (200 / 20 x 0.1 s = 1.0 s): what a client with
zero overhead would take. The ratio says how much imagegen adds on top (planning, validation,
retries bookkeeping, the job store, decoding and probing every image).

    python -m benchmarks.batch_throughput [--requests 200] [--concurrency 20] [--latency 0.1] [--write]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imagegen import Client, ImageRequest

RESULTS = Path(__file__).parent / "results" / "batch_throughput.md"


#: Emulator options: small images, so the measure is imagegen's overhead, not JPEG encoding.
EMULATORS = {
    "gemini": ["--option", "pixel_scale=0.05"],
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


def run_once(provider: str, latency: float, requests: int, concurrency: int, store: Path) -> float:
    with emulator_process(provider, latency) as base_url:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    ideal = args.requests / args.concurrency * args.latency
    import tempfile

    lines = ["| provider | median s | ideal s | ratio to ideal |", "|---|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for provider in EMULATORS:
            times = [run_once(provider, args.latency, args.requests, args.concurrency, Path(tmp) / f"{provider}{i}.db")
                     for i in range(args.rounds)]
            median = statistics.median(times)
            lines.append(f"| {provider} | {median:.3f} | {ideal:.3f} | {median / ideal:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python -m benchmarks.batch_throughput " + " ".join(sys.argv[1:] if argv is None else argv)
        RESULTS.write_text(f"# Batch throughput\n\n{args.requests} generations at concurrency {args.concurrency}, "
                           f"emulators answering in {args.latency * 1000:.0f} ms, median of {args.rounds} rounds.\n\n"
                           f"Command: `{command.strip()}`\n\n{table}\n")


if __name__ == "__main__":
    main()
