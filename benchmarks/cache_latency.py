"""Cache-hit latency of a ~1 MB image per backend, next to the uncached round trip, as ratios.

The uncached call goes to the Gemini emulator (in its own process, no added latency, photo-like
JPEGs about as large as real ones), so "uncached" is imagegen's full path over loopback with
zero server think time: the ratio is the smallest a cache hit can save, real providers take
seconds.

    python -m benchmarks.cache_latency [--rounds 30] [--write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.gemini_memory import _free_port, _wait_ready

NOTE = """The uncached figure includes the emulator encoding a fresh photo-like 2K JPEG for every call
(most of its ~0.4 s, in its own process), much as a real provider spends seconds drawing it; a
hit reads the stored bytes back (memory: a copy; disk: SQLite index + one file; Redis: two round
trips over loopback) and never touches the provider."""
RESULTS = Path(__file__).parent / "results" / "cache_latency.md"
CASE = {"model": "gemini-3-pro-image", "aspect_ratio": "1:1", "size": "2K"}


def start_redis() -> tuple[subprocess.Popen[bytes] | None, str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        return None, None
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def timed(client, prompt: str) -> tuple[float, object]:
    started = time.perf_counter()
    result = client.generate(prompt, provider="gemini", **CASE)
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> None:
    from imagegen import Client

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, "-c", f"from benchmarks.gemini_memory import serve; serve({port})"])
    redis_proc, redis_url = start_redis()
    try:
        _wait_ready(base_url, child)
        with tempfile.TemporaryDirectory() as tmp:
            def client(cache: dict) -> Client:
                return Client({"providers": {"gemini": {"base_url": base_url, "api_key": "bench"}},
                               "jobs": {"backend": "memory"}, "ledger": {"backend": "memory"}, "cache": cache})

            rows: dict[str, list[float]] = {}
            with client({"backend": "off"}) as plain:
                timed(plain, "warm up")
                rows["uncached (emulator round trip)"] = [timed(plain, f"fox {i}")[0] for i in range(args.rounds)]
                size = len(timed(plain, "size")[1].images[0].data)
            backends = {"memory": {"backend": "memory"}, "disk": {"backend": "disk", "path": f"{tmp}/disk"}}
            if redis_url:
                backends["redis"] = {"backend": "redis", "url": redis_url}
            for name, cache in backends.items():
                with client(cache) as cached:
                    timed(cached, "the cached fox")
                    samples = [timed(cached, "the cached fox") for _ in range(args.rounds)]
                    assert all(r.cached for _, r in samples)
                    rows[f"hit: {name}"] = [t for t, _ in samples]
    finally:
        child.terminate()
        if redis_proc:
            redis_proc.terminate()

    baseline = statistics.median(rows["uncached (emulator round trip)"])
    lines = [f"Image: {size / 1e6:.2f} MB JPEG ({CASE['model']}, {CASE['aspect_ratio']}, {CASE['size']}); "
             f"median of {args.rounds} calls each.", "",
             "| path | median ms | ratio to uncached |", "|---|---:|---:|"]
    for name, values in rows.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median * 1000:.2f} | {median / baseline:.3f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python -m benchmarks.cache_latency " + " ".join(sys.argv[1:] if argv is None else argv)
        RESULTS.write_text(f"# Cache-hit latency\n\nCommand: `{command.strip()}` ({os.cpu_count()} cores)\n\n"
                           f"{table}\n\n{NOTE}\n")


if __name__ == "__main__":
    main()
