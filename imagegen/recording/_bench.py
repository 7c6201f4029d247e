"""``imagegen bench``: replay cassettes through the real client and compare providers.

Every cassette with imagegen metadata under the given folders is replayed, one after the
other, through an ``AsyncClient`` configured as it was while recording. Each call becomes a
``CallSample``; samples are grouped per provider and model (the first one a call tried:
a route's fallbacks count against the provider that failed over) into rows of latency to
result (p50/p95, real-world seconds), status polls per job, requests and bytes per call,
cost per image (the price book's estimate next to what the provider reported) and failure
and fallback rates.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._errors import ImageGenError
from .._models import ImageRequest, ImageResult
from ._cassette import read_info
from ._replay import Replay

__all__ = ["BenchReport", "CallSample", "find_cassettes", "run_bench", "summarize"]


@dataclass
class CallSample:
    """One replayed call."""

    cassette: str
    provider: str
    model: str | None
    outcome: str
    succeeded: bool
    fell_back: bool
    latency_s: float
    recorded_latency_s: float | None
    polls: int
    requests: int
    bytes: int
    estimated_usd: float | None = None
    estimated_credits: float | None = None
    actual_usd: float | None = None
    actual_credits: float | None = None
    images: int = 0
    #: Where the cassette was recorded ("emulator" or "service") and on which day.
    source: str = "service"
    recorded_at: str | None = None


@dataclass
class BenchReport:
    speed: float
    cassettes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    samples: list[CallSample] = field(default_factory=list)
    wall_s: float = 0.0

    def rows(self) -> list[dict[str, Any]]:
        return summarize(self.samples)

    def sources(self) -> dict[str, Any]:
        """How many cassettes came from emulators and from real services (with the days recorded)."""
        seen: dict[str, tuple[str, str | None]] = {s.cassette: (s.source, s.recorded_at) for s in self.samples}
        days = sorted({day for source, day in seen.values() if source == "service" and day})
        return {"emulator": sum(source == "emulator" for source, _ in seen.values()),
                "service": sum(source != "emulator" for source, _ in seen.values()),
                "service_recorded": days}

    def provenance(self) -> str:
        """One sentence on where the numbers come from (printed under the table)."""
        counts = self.sources()
        parts = []
        if counts["emulator"]:
            parts.append(f"{counts['emulator']} cassette(s) recorded against imagegen's emulators: their latencies "
                         "are the emulators' latency models, not measured service latencies")
        if counts["service"]:
            days = counts["service_recorded"]
            when = f" on {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else "") if days else " (date not recorded)"
            parts.append(f"{counts['service']} cassette(s) recorded against the real services{when}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"speed": self.speed, "wall_s": round(self.wall_s, 3), "cassettes": len(self.cassettes),
                "sources": self.sources(), "provenance": self.provenance(),
                "skipped": self.skipped, "rows": self.rows(), "calls": [asdict(s) for s in self.samples]}


def find_cassettes(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """Cassettes with imagegen metadata under ``paths`` (files or folders), and those skipped."""
    found, skipped = [], []
    for path in map(Path, paths):
        files = sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            try:
                info = read_info(file)
            except Exception as exc:
                skipped.append(f"{file}: unreadable ({type(exc).__name__})")
                continue
            if info is None or not info.requests:
                skipped.append(f"{file}: no imagegen metadata (a plain vcrpy cassette)")
            else:
                found.append(file)
    return found, skipped


def _per_image(value: float | None, images: int) -> float | None:
    return None if value is None or images <= 0 else value / images


def _first_target(client: Any, request: ImageRequest, outcome: ImageResult | ImageGenError) -> tuple[str, str | None]:
    attempts = outcome.attempts if isinstance(outcome, ImageResult) else getattr(outcome, "attempts", None)
    if attempts:
        return attempts[0].provider, attempts[0].model
    name = getattr(outcome, "provider", None) or (request.provider or "").partition("/")[0]
    try:
        return name, client.provider(name).model_spec(request.model).id
    except ImageGenError:
        return name, request.model


async def replay_cassette(path: Path, speed: float) -> list[CallSample]:
    """Replay one cassette through an ``AsyncClient``; one sample per recorded request."""
    from .._client import AsyncClient

    samples = []
    with Replay(path, speed=speed) as replay:
        async with AsyncClient(replay.config, transports=replay.transports) as client:
            replay.instrument(client)
            if replay.info.kind in ("vendor_batch", "session"):
                from ._kinds import replay_batch, replay_session

                run = replay_batch if replay.info.kind == "vendor_batch" else replay_session
                return await run(client, replay, path)
            outcomes = replay.info.outcomes
            for index, request in enumerate(replay.requests):
                try:
                    estimate = await client.estimate(request)
                except ImageGenError:
                    estimate = None
                before = replay.played()
                replay.clock.reset()
                started = time.perf_counter()
                try:
                    outcome: ImageResult | ImageGenError = await client.generate(request)
                except ImageGenError as exc:
                    outcome = exc
                wall = time.perf_counter() - started
                provider, model = _first_target(client, request, outcome)
                recorded = outcomes[index].get("latency_s") if index < len(outcomes) else None
                ok = isinstance(outcome, ImageResult)
                result = outcome if isinstance(outcome, ImageResult) else None
                images = len(result.images) if result is not None else 0
                samples.append(CallSample(
                    cassette=str(path), provider=provider, model=model,
                    outcome="ImageResult" if ok else type(outcome).__name__, succeeded=ok,
                    fell_back=result is not None and result.provider != provider,
                    latency_s=replay.to_real_seconds(wall, replay.clock.slept_s),
                    # A sped-up recording's wall clock also holds client time, which /time_scale
                    # would inflate: only a real-time recording's latency is comparable.
                    recorded_latency_s=recorded if replay.info.time_scale == 1.0 else None,
                    polls=replay.clock.polls, requests=replay.clock.requests,
                    bytes=replay.bytes_of(replay.played() - before),
                    estimated_usd=_per_image(estimate.usd if estimate else None, request.n),
                    estimated_credits=_per_image(estimate.credits if estimate else None, request.n),
                    actual_usd=_per_image(result.cost.usd, images) if result is not None else None,
                    actual_credits=_per_image(result.cost.credits, images) if result is not None else None,
                    images=images, source=replay.info.source, recorded_at=replay.info.recorded_at))
    return samples


async def run_bench(paths: Iterable[str | Path], *, speed: float = 100.0) -> BenchReport:
    cassettes, skipped = find_cassettes(paths)
    report = BenchReport(speed=speed, cassettes=[str(c) for c in cassettes], skipped=skipped)
    started = time.perf_counter()
    for cassette in cassettes:
        report.samples.extend(await replay_cassette(cassette, speed))
    report.wall_s = time.perf_counter() - started
    return report


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(samples: list[CallSample]) -> list[dict[str, Any]]:
    """One row per provider and model, sorted by provider then model."""
    groups: dict[tuple[str, str], list[CallSample]] = {}
    for sample in samples:
        groups.setdefault((sample.provider, sample.model or "-"), []).append(sample)
    rows = []
    for (provider, model), group in sorted(groups.items()):
        ok = [s for s in group if s.succeeded]
        latencies = [s.latency_s for s in ok]
        jobs = [s for s in group if s.polls] or group
        rows.append({
            "provider": provider, "model": model, "calls": len(group), "succeeded": len(ok),
            "failure_rate": round(1 - len(ok) / len(group), 4),
            "fallback_rate": round(sum(s.fell_back for s in group) / len(group), 4),
            "latency_p50_s": _round(percentile(latencies, 0.5)),
            "latency_p95_s": _round(percentile(latencies, 0.95)),
            "recorded_latency_p50_s": _round(percentile(
                [s.recorded_latency_s for s in ok if s.recorded_latency_s is not None], 0.5)),
            "polls_per_job": _round(statistics.fmean(s.polls for s in jobs), 2),
            "requests_per_call": _round(statistics.fmean(s.requests for s in group), 2),
            "bytes_per_call": round(statistics.fmean(s.bytes for s in group)),
            "cost_per_image": {
                "estimated_usd": _round(_mean([s.estimated_usd for s in ok]), 6),
                "actual_usd": _round(_mean([s.actual_usd for s in ok]), 6),
                "estimated_credits": _round(_mean([s.estimated_credits for s in ok])),
                "actual_credits": _round(_mean([s.actual_credits for s in ok])),
            },
            "latencies_s": [round(v, 4) for v in latencies],
        })
    return rows


def run_bench_sync(paths: Iterable[str | Path], *, speed: float = 100.0) -> BenchReport:
    return asyncio.run(run_bench(paths, speed=speed))
