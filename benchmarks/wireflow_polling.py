"""How well the documented Wireflow poll schedule follows executions on the emulator.

    python benchmarks/wireflow_polling.py [--jobs 40] [--samples 20000] [--time-scale 0.2]
                                          [--out benchmarks/results/wireflow_polling.md]

For the documented schedule (first poll after 1 s, then x1.5 per poll, capped at 10 s) and
the emulator's latency model (Nano Banana 2: 6 s + 0.6 s/MP, +-35 % jitter: "4-15 s at 1K,
10-20 s at 4K"), it reports per job the number of polls and the delay between the execution
finishing and the client seeing it (mean, p50, p95):

1. *model*: completion times drawn from the latency model, polls placed on the schedule
   exactly (no network), many samples; G3's fixed 6 s poll is shown for comparison;
2. *loopback*: real jobs through ``imagegen.AsyncClient`` and the provider against the
   emulator over loopback HTTP, all times scaled by ``--time-scale`` (latency and schedule
   alike) and scaled back for the table. The emulator records, per execution, when it
   finished and when a poll first showed it; polls are counted by the emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imagegen_wireflow.emulator import create_emulator, default_latency
from imagegen_wireflow.provider import WireflowProvider

from imagegen import AsyncClient, PollSchedule
from imagegen.testing import LatencyModel, serve

SIZES = {"1K": 1.048576, "4K": 16.777216}  # megapixels of a 1:1 output
DOCUMENTED = WireflowProvider.poll_schedule


def poll_times(schedule: PollSchedule) -> list[float]:
    """Cumulative poll times (seconds after submit) for the first 200 polls."""
    return list(itertools.accumulate(itertools.islice(schedule.delays(), 200)))


def simulate(schedule: PollSchedule, megapixels: float, samples: int, seed: int) -> tuple[list[int], list[float]]:
    latency = default_latency()
    latency.scale, latency.seed = 1.0, seed
    latency.__post_init__()
    times = poll_times(schedule)
    polls, delays = [], []
    for _ in range(samples):
        done = latency.sample(megapixels)
        index = next(i for i, t in enumerate(times) if t >= done)
        polls.append(index + 1)
        delays.append(times[index] - done)
    return polls, delays


async def measure(size: str, jobs: int, scale: float, seed: int) -> tuple[list[int], list[float]]:
    base = default_latency()
    latency = LatencyModel(base=base.base, per_megapixel=base.per_megapixel, jitter=base.jitter,
                           scale=scale, seed=seed)
    emulator = create_emulator(latency=latency, executions_per_minute=1e9, requests_per_minute=1e9,
                               output_max_side=64)
    schedule = [DOCUMENTED.initial * scale, DOCUMENTED.factor, DOCUMENTED.cap * scale]
    with serve(emulator) as server:
        config = {"providers": {"wireflow": {"base_url": server.base_url, "api_key": "sk-bench",
                                             "poll_schedule": schedule, "executions_per_minute": 1e9,
                                             "requests_per_minute": 1e9, "persist_workflows": False}},
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
        async with AsyncClient(config) as client:
            await asyncio.gather(*(client.generate(f"job {i}", provider="wireflow", size=size)
                                   for i in range(jobs)))
    runs = list(emulator.executions.values())
    polls = [run.polls for run in runs]
    delays = [(run.seen_done_at - run.completes_at) / scale for run in runs if run.seen_done_at]
    return polls, delays


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def row(label: str, size: str, polls: list[int], delays: list[float]) -> str:
    return (f"| {label} | {size} | {len(polls)} | {statistics.mean(polls):.2f} | {pct(polls, 0.5):.0f} | "
            f"{pct(polls, 0.95):.0f} | {statistics.mean(delays):.2f} | {pct(delays, 0.5):.2f} | "
            f"{pct(delays, 0.95):.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="loopback jobs per size")
    parser.add_argument("--samples", type=int, default=20000, help="model samples per size")
    parser.add_argument("--time-scale", type=float, default=0.2, help="loopback time scale")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    os.environ.setdefault("IMAGEGEN_DATA_DIR", tempfile.mkdtemp(prefix="imagegen-bench-"))

    fixed = PollSchedule(6.0, 1.0, 6.0)
    lines = [
        "| run | size | jobs | polls mean | polls p50 | polls p95 | delay mean (s) | delay p50 (s) | delay p95 (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    started = time.monotonic()
    for size, megapixels in SIZES.items():
        lines.append(row("model, documented 1 s x1.5 cap 10 s", size,
                         *simulate(DOCUMENTED, megapixels, args.samples, args.seed)))
        lines.append(row("model, fixed 6 s (G3 scripts)", size, *simulate(fixed, megapixels, args.samples, args.seed)))
        lines.append(row(f"loopback x{args.time_scale:g}, documented", size,
                         *asyncio.run(measure(size, args.jobs, args.time_scale, args.seed))))
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/wireflow_polling.py", *(argv or sys.argv[1:])])
    report = "\n".join([
        "# Wireflow polling: polls per job and completion-to-seen delay",
        "",
        f"Command: `{command}` (took {time.monotonic() - started:.0f} s; 2 cores).",
        "",
        ("Latency model: the emulator's default for Nano Banana 2, `6 s + 0.6 s/MP`, jitter +-35 % "
        "(1K about 4.3-8.9 s, 4K about 10.4-21.6 s). Schedule: the documented one, first poll after 1 s, "
        "x1.5 per poll, capped at 10 s; the fixed 6 s poll of Wireflow's client scripts (G3) for comparison. "
        "Delay = time between the execution finishing and the first poll that shows it. Loopback rows run "
        "real jobs through AsyncClient, the provider and the emulator with every time scaled by the time "
        "scale and scaled back here, so a few ms of loopback round trip count as about 1/scale times more."),
        "",
        *lines,
        "",
        ("Reading: the documented schedule spends about 4 polls on a 1K job and 6 on a 4K job, and sees "
        "the end about 2 s (1K) to 3.7 s (4K) late on average; its long tail at 4K comes from the 10 s cap. "
        "Fewer polls than the fixed 6 s poll is not what it buys: it buys earlier sight of short jobs. "
        "On the Free plan (10 requests/min) a single job's polls fit; a batch is paced by the "
        "provider's limiter instead of earning 429s."),
        "",
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
