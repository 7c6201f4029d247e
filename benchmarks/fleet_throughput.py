"""Fleet throughput with 1, 2 and 4 workers against one emulator without a rate limit.

Each worker is a real ``imagegen worker`` process with ``--concurrency C``; the emulator (Gemini,
answering in ``--latency`` seconds) runs in its own process and so does redis-server. A round
submits ``--per-worker`` prompts per worker with ``imagegen batch --fleet`` and measures the
steady-state throughput from the batch's own counters: prompts finished between the first and
the last outcome, over that time (worker start-up, an import of a few seconds, is left out).
Rounds of the three sizes are interleaved so the machine's noise hits them alike.

The ideal is linear: W workers x C / latency prompts per second.

    python -m benchmarks.fleet_throughput [--latency 0.5] [--concurrency 4] [--per-worker 60] [--rounds 2] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "fleet_throughput.md"
SIZES = (1, 2, 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@contextmanager
def _child(command: list[str], port: int) -> Iterator[None]:
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, child)
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)


def _config(tmp: Path, base_url: str) -> Path:
    path = tmp / "imagegen.toml"
    path.write_text(f'default = "gemini"\n[providers.gemini]\nbase_url = "{base_url}"\napi_key = "env:BENCH_KEY"\n'
                    '[cache]\nbackend = "off"\n')
    return path


def one_round(workers: int, args: argparse.Namespace, url: str, config: Path, tmp: Path) -> float:
    env = {**os.environ, "BENCH_KEY": "bench", "IMAGEGEN_DATA_DIR": str(tmp / "data"),
           "IMAGEGEN_FLEET__KEY_PREFIX": f"bench{time.time_ns()}:"}
    prompts = tmp / "prompts.txt"
    prompts.write_text("".join(f"a tide pool, study {i} {time.time_ns()}\n" for i in range(workers * args.per_worker)))
    submitted = subprocess.run([sys.executable, "-m", "imagegen", "batch", str(prompts), "--fleet", url, "--out",
                                str(tmp / "out"), "--config", str(config), "--json"],
                               env=env, capture_output=True, text=True, check=True)
    batch_id = json.loads(submitted.stdout)["batch_id"]
    procs = [subprocess.Popen([sys.executable, "-m", "imagegen", "worker", "--fleet", url, "--config", str(config),
                               "--concurrency", str(args.concurrency), "--exit-when-idle", "--json"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    for proc in procs:
        proc.wait(timeout=600)
    counts = redis.Redis.from_url(url).hgetall(f"{env['IMAGEGEN_FLEET__KEY_PREFIX']}b:{batch_id}:counts")
    done = int(counts[b"succeeded"])
    span = float(counts[b"last_at"]) - float(counts[b"first_at"])
    return (done - 1) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--per-worker", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    emu_port, redis_port = _free_port(), _free_port()
    url = f"redis://127.0.0.1:{redis_port}/0"
    emulator = [sys.executable, "-m", "imagegen", "emulate", "gemini", "--port", str(emu_port),
                "--latency", str(args.latency), "--option", "image_scale=0.02"]
    redis_cmd = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
                 "--appendonly", "no"]
    rates: dict[int, list[float]] = {n: [] for n in SIZES}
    with tempfile.TemporaryDirectory() as tmp_dir, _child(redis_cmd, redis_port), _child(emulator, emu_port):
        tmp = Path(tmp_dir)
        config = _config(tmp, f"http://127.0.0.1:{emu_port}")
        for r in range(args.rounds):
            for workers in (SIZES if r % 2 == 0 else tuple(reversed(SIZES))):
                rate = one_round(workers, args, url, config, tmp)
                rates[workers].append(rate)
                print(f"round {r + 1}: {workers} worker(s): {rate:.1f} prompts/s", flush=True)
    report(rates, args)


def report(rates: dict[int, list[float]], args: argparse.Namespace) -> None:
    ideal_one = args.concurrency / args.latency
    base = statistics.median(rates[1])
    rows = ["| workers | prompts/s (median) | rounds | vs 1 worker | ideal (W x C / latency) | of ideal |",
            "|---|---|---|---|---|---|"]
    for workers in SIZES:
        median = statistics.median(rates[workers])
        rows.append(f"| {workers} | {median:.1f} | {', '.join(f'{x:.1f}' for x in rates[workers])} | "
                    f"{median / base:.2f}x | {workers * ideal_one:.1f} | {median / (workers * ideal_one):.0%} |")
    table = "\n".join(rows)
    print(table)
    if args.write:
        RESULTS.write_text(
            "# Fleet throughput: 1, 2 and 4 workers, one emulator without a rate limit\n\n"
            f"Command: `python -m benchmarks.fleet_throughput --latency {args.latency} --concurrency "
            f"{args.concurrency} --per-worker {args.per_worker} --rounds {args.rounds} --write`\n\n"
            f"Each worker is an `imagegen worker` process (`--concurrency {args.concurrency}`); the Gemini emulator "
            f"answers in {args.latency} s and runs in its own process, as does redis-server. Throughput is "
            "steady state, from the batch's first to its last outcome (worker start-up left out); sizes "
            "interleaved per round. Machine: the shared 2-core box (other sessions' test suites running "
            "meanwhile), so every process — workers, emulator, Redis — competes for two cores.\n\n"
            f"{table}\n")


if __name__ == "__main__":
    main()
