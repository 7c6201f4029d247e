"""How well the documented Wireflow poll schedule follows executions on the emulator.

    python benchmarks/wireflow_polling.py [--jobs 40] [--samples 20000] [--time-scale 0.2]
                                          [--out benchmarks/results/wireflow_polling.md]

For the documented schedule (first poll after 1 s, then x1.5 per poll, capped at 10 s) and
the emulator's latency model (Nano Banana 2: 6 s + 0.6 s/MP, +-35 % jitter: "4-15 s at 1K,
10-20 s at 4K"), it reports per job the number of polls and the delay between the execution
finishing and the client seeing it (mean, p50, p95), for the documented schedule and for
adaptive ones (``AdaptivePollSchedule``: polls at quantiles of the latency distribution):

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

from imagegen import AsyncClient
from imagegen.provider import AdaptivePollSchedule, PollSchedule
from imagegen.testing import LatencyModel, serve
from imagegen_wireflow.emulator import create_emulator, default_latency

SIZES = {"1K": 1.048576, "4K": 16.777216}  # megapixels of a 1:1 output
DOCUMENTED = PollSchedule(1.0, 1.5, 10.0)  # P13; the provider now defaults to an adaptive one


def poll_times(schedule: PollSchedule) -> list[float]:
    """Cumulative poll times (seconds after submit) for the first 200 polls."""
    return list(itertools.accumulate(itertools.islice(schedule.delays(), 200)))


def nb2_latency() -> LatencyModel:
    """nano-banana2.com's emulator default ("2-3 seconds per image")."""
    return LatencyModel(base=2.0, per_megapixel=0.4, jitter=0.2)


def draws(model: LatencyModel, megapixels: float, samples: int, seed: int) -> list[float]:
    latency = LatencyModel(base=model.base, per_megapixel=model.per_megapixel, jitter=model.jitter,
                           scale=1.0, seed=seed)
    return [latency.sample(megapixels) for _ in range(samples)]


def adaptive(model: LatencyModel, sizes: list[float], polls: int, seed: int) -> AdaptivePollSchedule:
    """Trained on draws other than the ones it is measured on (another seed)."""
    training = [t for mp in sizes for t in draws(model, mp, 2000, seed + 1000)]
    return AdaptivePollSchedule.from_latencies(training, polls=polls, then=DOCUMENTED)


def simulate(schedule: PollSchedule | AdaptivePollSchedule, megapixels: float, samples: int, seed: int,
             model: LatencyModel | None = None) -> tuple[list[int], list[float]]:
    latency = model or default_latency()
    latency = LatencyModel(base=latency.base, per_megapixel=latency.per_megapixel, jitter=latency.jitter,
                           scale=1.0, seed=seed)
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
    both = list(SIZES.values())
    for size, megapixels in SIZES.items():
        lines.append(row("model, documented 1 s x1.5 cap 10 s", size,
                         *simulate(DOCUMENTED, megapixels, args.samples, args.seed)))
        lines.append(row("model, fixed 6 s (G3 scripts)", size, *simulate(fixed, megapixels, args.samples, args.seed)))
        for polls in (4, 6):
            lines.append(row(f"model, adaptive: {polls} polls at quantiles of this size's latencies", size,
                             *simulate(adaptive(default_latency(), [megapixels], polls, args.seed), megapixels,
                                       args.samples, args.seed)))
            lines.append(row(f"model, adaptive: {polls} polls at quantiles of 1K+4K latencies", size,
                             *simulate(adaptive(default_latency(), both, polls, args.seed), megapixels,
                                       args.samples, args.seed)))
        lines.append(row(f"loopback x{args.time_scale:g}, documented", size,
                         *asyncio.run(measure(size, args.jobs, args.time_scale, args.seed))))
    lines += ["", "nano-banana2.com async jobs (emulator default `2 s + 0.4 s/MP`, +-20 %), same schedules:", "",
              *lines[:2]]
    for size, megapixels in SIZES.items():
        lines.append(row("model, documented 1 s x1.5 cap 10 s", size,
                         *simulate(DOCUMENTED, megapixels, args.samples, args.seed, nb2_latency())))
        for polls in (3, 4):
            lines.append(row(f"model, adaptive: {polls} polls at quantiles of this size's latencies", size,
                             *simulate(adaptive(nb2_latency(), [megapixels], polls, args.seed), megapixels,
                                       args.samples, args.seed, nb2_latency())))
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
        "An adaptive schedule (`imagegen._provider.AdaptivePollSchedule`: polls at evenly spaced quantiles "
        "of the latency distribution, trained here on 2,000 other draws, then the documented backoff) "
        "wins on both counts: tuned per size it needs 3 polls and sees the end 0.7 s (1K) / 1.7 s (4K) "
        "late; one schedule for both sizes (the provider cannot see the size while it waits), 6 planned "
        "polls at quantiles of 1K+4K latencies, still spends fewer polls (2.7 vs 4.1 at 1K, 5.3 vs 5.8 at "
        "4K) and sees the end sooner (1.5 vs 2.1 s, 1.9 vs 3.6 s): it is Wireflow's default now. "
        "For nano-banana2.com jobs (2-3 s) the documented schedule is already close at 1K (2.4 polls), "
        "so it stays; an adaptive one helps at 4K."),
        "",
    ])
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
