"""Replay: a cassette played back through a real Client, at recorded speed or faster.

vcrpy plays the answers (record mode ``none``: a request the cassette does not hold fails,
nothing reaches the network). A pacing transport wrapped around the patched one sleeps
each answer's recorded time divided by ``speed``, and the providers' poll schedules are
scaled by the same factor, so a replay at ``speed=100`` is the recording's timeline
compressed 100 times. ``ReplayClock`` keeps what was slept, so a latency measured during
a fast replay converts back to real-world seconds: ``wall + slept * (speed - 1)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

from .._models import ImageRequest
from ._cassette import ELAPSED_HEADER, CassetteInfo, fresh_provider_state, read_info, replay_vcr

__all__ = ["Replay", "ReplayClock", "ScaledPollSchedule"]

REPLAY_API_KEY = "imagegen-replay-key"


@dataclass
class ReplayClock:
    """What one replayed call did: seconds slept (answers, poll delays), requests, status polls."""

    answer_s: float = 0.0
    poll_s: float = 0.0
    requests: int = 0
    polls: int = 0

    @property
    def slept_s(self) -> float:
        return self.answer_s + self.poll_s

    def reset(self) -> None:
        self.answer_s = self.poll_s = 0.0
        self.requests = self.polls = 0


class ScaledPollSchedule:
    """Any poll schedule with every delay multiplied by ``factor`` (and counted on ``clock``)."""

    def __init__(self, inner: Any, factor: float, clock: ReplayClock) -> None:
        self.inner, self.factor, self.clock = inner, factor, clock

    def delays(self) -> Iterator[float]:
        for delay in self.inner.delays():
            scaled = delay * self.factor
            self.clock.poll_s += scaled
            yield scaled


class _PacingTransport(httpx.AsyncBaseTransport):
    def __init__(self, clock: ReplayClock, speed: float) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._clock, self._speed = clock, speed

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        self._clock.requests += 1
        raw = response.headers.get(ELAPSED_HEADER)
        if raw is not None:
            del response.headers[ELAPSED_HEADER]
            seconds = float(raw) / self._speed
            self._clock.answer_s += seconds
            await asyncio.sleep(seconds)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def provider_names(config: dict[str, Any]) -> list[str]:
    names = set(config.get("providers") or {})
    for route in (config.get("routes") or {}).values():
        names.update(str(entry).partition("/")[0] for entry in route.get("chain", []))
    return sorted(names)


class Replay:
    """One cassette, ready to replay: ``with Replay(path, speed=100) as replay:`` installs it.

    Inside, make a ``Client(replay.config, transports=replay.transports)`` (or an
    ``AsyncClient``), call ``replay.instrument(client)``, then run ``replay.requests``.
    """

    def __init__(self, path: str | Path, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.path = Path(path)
        info = read_info(self.path)
        if info is None:
            raise ValueError(f"{self.path} has no imagegen metadata; record it with `imagegen record`")
        self.info: CassetteInfo = info
        self.speed = speed
        self.clock = ReplayClock()
        self.cassette: Any = None
        self._context: Any = None
        self._state: Any = None

    @property
    def config(self) -> dict[str, Any]:
        config = dict(self.info.config)
        providers = {name: dict(table) for name, table in (config.get("providers") or {}).items()}
        for name in provider_names(config):
            providers.setdefault(name, {})["api_key"] = REPLAY_API_KEY
        # A replay spends nothing and keeps nothing: no job store, cache or ledger on disk.
        return {**config, "providers": providers, "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
                "ledger": {"backend": "memory"}}

    @property
    def requests(self) -> list[ImageRequest]:
        return [ImageRequest.model_validate(r) for r in self.info.requests]

    @property
    def transports(self) -> dict[str, httpx.AsyncBaseTransport]:
        return {name: _PacingTransport(self.clock, self.speed) for name in provider_names(self.info.config)}

    def to_real_seconds(self, wall_s: float, slept_s: float) -> float:
        """A duration measured during this replay, in the recording's real-world seconds."""
        return wall_s + slept_s * (self.speed - 1.0)

    def instrument(self, client: Any) -> None:
        """Scale the client's poll schedules to the replay's speed and count status polls."""
        factor = 1.0 / (self.info.time_scale * self.speed)
        for name in provider_names(self.info.config):
            provider = client.provider(name)
            provider.poll_schedule = ScaledPollSchedule(provider.poll_schedule, factor, self.clock)
            provider.status = _counted(provider.status, self.clock)

    def played(self) -> set[int]:
        """Indexes of the interactions played so far."""
        return {index for index, count in self.cassette.play_counts.items() if count}

    def bytes_of(self, indexes: set[int]) -> int:
        total = 0
        for index in indexes:
            request, response = self.cassette.data[index]
            body = request.body or b""
            total += len(body) + len((response.get("body") or {}).get("string") or b"")
        return total

    def __enter__(self) -> Self:
        # Providers start from an empty state, as when the cassette was recorded (see fresh_provider_state).
        self._state = fresh_provider_state()
        self._state.__enter__()
        try:
            self._context = replay_vcr(self.info.time_scale).use_cassette(str(self.path))
            self.cassette = self._context.__enter__()
        except BaseException:
            self._state.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        context, self._context = self._context, None
        try:
            context.__exit__(*exc_info)
        finally:
            self._state.__exit__(None, None, None)


def _counted(status: Any, clock: ReplayClock) -> Any:
    async def counted_status(native_id: str) -> Any:
        clock.polls += 1
        return await status(native_id)

    return counted_status
