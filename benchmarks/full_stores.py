"""Whole calls with long-lived stores: a budget over a 100k-row ledger, a disk cache at its cap.

Two ``AsyncClient`` pairs in one process talk to one Gemini emulator (a child process, tiny
images, no added latency), so a call's time is imagegen's own work:

- budget: a client whose SQLite ledger holds ``--ledger-rows`` charges from today, with
  daily, monthly and total budgets set, against the same client on an empty ledger.
  Sequential calls give the per-call time; a batch (``--batch`` calls at concurrency 20)
  gives the event loop's lag, sampled by a task that asks to wake every millisecond;
- cache: a client whose disk cache is at its size cap with ``--cache-entries`` entries as
  large as the emulator's images (so the cache stays at its cap), against the same client
  on an empty cache with the same cap; per-call CPU of this process (every thread:
  background writes count) over sequential calls plus the flush that lands their writes.
  A cache that evicts in batches does nothing for many puts, then much in one, so the
  cache pair makes enough calls over the rounds for two whole eviction cycles, and its
  figure is the mean over all of them (the amortised cost).

Each round runs both sides of a pair in a freshly shuffled order; figures are medians of
the rounds, ratios are loaded / empty.

    python -m benchmarks.full_stores [--rounds 7] [--calls 30] [--ledger-rows 100000] [--cache-entries 10000] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import store_scaling
from benchmarks.gemini_memory import serving_child
from benchmarks.store_scaling import fill_cache, fill_ledger

RESULTS = Path(__file__).parent / "results" / "full_stores.md"
BARS = {"budget per-call time": 1.2, "cache per-call CPU": 1.2}
LAG_BAR_MS = 20.0


def serve(port: int) -> None:
    """Child process: the Gemini emulator, tiny images, no latency."""
    from imagegen.testing import LatencyModel, run_forever
    from imagegen_gemini.emulator import GeminiEmulator

    run_forever(GeminiEmulator(latency=LatencyModel.none(), image_scale=0.02), host="127.0.0.1", port=port)


def _config(base_url: str, **sections: Any) -> dict[str, Any]:
    return {"providers": {"gemini": {"base_url": base_url, "api_key": "bench-key"}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}, "ledger": {"backend": "off"}, **sections}


async def _lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        asked = time.perf_counter()
        await asyncio.sleep(0.001)
        samples.append(time.perf_counter() - asked - 0.001)


async def _batch_lag(client: Any, calls: int) -> float:
    """p99 of the loop's lag, in seconds, while ``calls`` generations run 20 at a time."""
    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.ensure_future(_lag_monitor(samples, stop))
    run = uuid.uuid4().hex[:8]
    outcomes = await client.generate_many([f"lag {run} {i}" for i in range(calls)], concurrency=20)
    stop.set()
    await monitor
    assert all(hasattr(o, "images") for o in outcomes), outcomes[0]
    return statistics.quantiles(samples, n=100)[98]


class _BareBatch:
    """The same batch from a bare aiohttp client (``benchmarks.concurrency.Bare``): the loop lag
    this machine shows, at that moment, for work that is nothing but HTTP and decoding."""

    def __init__(self, base_url: str) -> None:
        from benchmarks.concurrency import Bare

        self.bare = Bare(base_url, 20)

    async def generate_many(self, prompts: list[str], concurrency: int) -> list[Any]:
        import aiohttp

        gate = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> Any:
            async with gate:
                try:
                    image = await self.bare.one(prompt)
                except aiohttp.ServerDisconnectedError:  # a keep-alive connection the server closed
                    image = await self.bare.one(prompt)
            return _Made(image)

        return await asyncio.gather(*(one(p) for p in prompts))


class _Made:
    def __init__(self, image: bytes) -> None:
        self.images = [image]


async def _sequential(client: Any, calls: int) -> tuple[float, float]:
    """Seconds and CPU seconds per call, the background writes' flush included."""
    run = uuid.uuid4().hex[:8]
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        await client.generate(f"a fox {run} {i}", provider="gemini")
    await client.flush()
    return (time.perf_counter() - wall) / calls, (time.process_time() - cpu) / calls


async def measure(base_url: str, args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    from imagegen import AsyncClient

    budget = {"daily_usd": 1e9, "monthly_usd": 1e9, "total_usd": 1e9}
    for name, rows in (("full", args.ledger_rows), ("empty", 0)):
        fill_ledger(tmp / f"ledger-{name}.sqlite3", rows)
    async with AsyncClient(_config(base_url)) as probe:
        image_bytes = len((await probe.generate("probe", provider="gemini")).images[0].data)
    store_scaling.BLOB = image_bytes
    started = time.perf_counter()
    kept = fill_cache(tmp / "cache-full", args.cache_entries)
    print(f"stores filled in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    clients = {
        ("budget", "loaded"): AsyncClient(_config(base_url, budget=budget, ledger={
            "backend": "sqlite", "path": str(tmp / "ledger-full.sqlite3")})),
        ("budget", "empty"): AsyncClient(_config(base_url, budget=budget, ledger={
            "backend": "sqlite", "path": str(tmp / "ledger-empty.sqlite3")})),
        ("cache", "loaded"): AsyncClient(_config(base_url, cache={
            "backend": "disk", "path": str(tmp / "cache-full"), "max_bytes": kept})),
        ("cache", "empty"): AsyncClient(_config(base_url, cache={
            "backend": "disk", "path": str(tmp / "cache-empty"), "max_bytes": kept})),
    }
    for client in clients.values():
        await _sequential(client, 3)  # warm: imports, pools, first-open work
    from imagegen import _cache

    cycle = int(args.cache_entries * (1 - getattr(_cache, "LOW_WATER", 1.0)))  # puts between evictions
    calls = {"budget": args.calls, "cache": max(args.calls, -(-2 * cycle // args.rounds))}
    figures: dict[tuple[str, str], dict[str, list[float]]] = {key: {} for key in clients}
    bare = _BareBatch(base_url)
    await _batch_lag(bare, 40)  # warm: its connections
    figures[("bare", "aiohttp")] = {"lag": []}
    shuffle = random.Random(args.seed).shuffle
    for _ in range(args.rounds):
        order = list(clients)
        shuffle(order)
        for key in order:
            wall, cpu = await _sequential(clients[key], calls[key[0]])
            figures[key].setdefault("wall", []).append(wall)
            figures[key].setdefault("cpu", []).append(cpu)
            if key[0] == "budget":
                figures[key].setdefault("lag", []).append(await _batch_lag(clients[key], args.batch))
        figures[("bare", "aiohttp")]["lag"].append(await _batch_lag(bare, args.batch))
    for client in clients.values():
        await client.aclose()
    await bare.bare.aclose()
    # The budget pair: medians of rounds; the cache pair: means (every round the same length).
    summary = {"budget": statistics.median, "cache": statistics.fmean, "bare": statistics.median}
    return {f"{kind} {side}": {name: summary[kind](values) for name, values in spot.items()}
            for (kind, side), spot in figures.items()}


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table(results: dict[str, dict[str, float]], args: argparse.Namespace, command: str) -> str:
    budget_ratio = results["budget loaded"]["wall"] / results["budget empty"]["wall"]
    cache_ratio = results["cache loaded"]["cpu"] / results["cache empty"]["cpu"]
    lag = max(results["budget loaded"]["lag"], results["budget empty"]["lag"]) * 1000
    lines = [
        "# Whole calls with long-lived stores", "",
        f"Command: `{command}` ({os.cpu_count()} cores, shared with other work; Gemini emulator in a child "
        f"process, tiny images, no latency; per round, each side makes {args.calls} sequential calls (the cache "
        f"pair enough for two eviction cycles over the rounds), sides in shuffled order; {args.rounds} rounds, "
        f"budget figures are medians, cache figures means; loop lag sampled during a {args.batch}-call batch "
        "at concurrency 20).", "",
        "| case | ms per call (wall) | ms per call (CPU) | loop lag p99 ms (batch) |",
        "|---|---:|---:|---:|"]
    labels = {"budget loaded": f"budget, ledger of {args.ledger_rows:,} rows",
              "budget empty": "budget, empty ledger",
              "cache loaded": f"disk cache at its cap, {args.cache_entries:,} entries",
              "cache empty": "disk cache, empty"}
    for name, label in labels.items():
        spot = results[name]
        lag_cell = f"{spot['lag'] * 1000:.1f}" if "lag" in spot else "-"
        lines.append(f"| {label} | {spot['wall'] * 1000:.2f} | {spot['cpu'] * 1000:.2f} | {lag_cell} |")
    floor = results["bare aiohttp"]["lag"] * 1000
    lines.append(f"| bare aiohttp client, the same batch (this machine's floor) | - | - | {floor:.1f} |")
    budget_bar, cache_bar = BARS["budget per-call time"], BARS["cache per-call CPU"]
    lines += ["", f"- budget: per-call time {budget_ratio:.2f}x the empty ledger's (bar {budget_bar}x): "
              f"{_verdict(budget_ratio <= budget_bar)}; loop lag p99 {lag:.1f} ms "
              f"(bar {LAG_BAR_MS:.0f} ms): {_verdict(lag <= LAG_BAR_MS)}; a bare aiohttp client's, same batch, "
              f"same moments: {floor:.1f} ms",
              f"- cache: per-call CPU {cache_ratio:.2f}x the empty cache's (bar {cache_bar}x): "
              f"{_verdict(cache_ratio <= cache_bar)}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--ledger-rows", type=int, default=100_000)
    parser.add_argument("--cache-entries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory(prefix="imagegen-full-stores-") as tmp, \
            serving_child("benchmarks.full_stores") as base_url:
        results = asyncio.run(measure(base_url, args, Path(tmp)))
    command = "python -m benchmarks.full_stores " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(results, args, command.strip())
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
