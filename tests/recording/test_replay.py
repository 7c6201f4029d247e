"""Replay through the real Client, sync and async, with no server (the network guard stays on)."""

from __future__ import annotations

import time
from pathlib import Path

from imagegen import AsyncClient, Client, ContentPolicyError, ImageGenError
from imagegen.recording import Replay
from imagegen.recording._cassette import interactions

from .conftest import records_wireflow_in_real_time


def _outcomes(results: list) -> list[str]:
    return [type(r).__name__ for r in results]


def test_replay_sync(gemini_cassette: Path) -> None:
    with Replay(gemini_cassette, speed=50) as replay, Client(replay.config, transports=replay.transports) as client:
        replay.instrument(client)
        results = []
        for request in replay.requests:
            try:
                results.append(client.generate(request))
            except ImageGenError as exc:
                results.append(exc)
        assert replay.cassette.all_played
    assert _outcomes(results) == ["ImageResult", "ImageResult", "ContentPolicyError"]
    assert results[0].provider == "gemini" and results[0].images[0].width > 0
    assert results[0].cost.estimated is False and results[0].cost.usd > 0
    assert isinstance(results[2], ContentPolicyError)


@records_wireflow_in_real_time
async def test_replay_async_counts_polls(wireflow_cassette: Path) -> None:
    polls = [e for e in interactions(wireflow_cassette) if e["request"]["uri"].endswith("/poll")]
    with Replay(wireflow_cassette, speed=20) as replay:
        async with AsyncClient(replay.config, transports=replay.transports) as client:
            replay.instrument(client)
            result = await client.generate(replay.requests[0])
        assert replay.cassette.all_played
    assert result.provider == "wireflow" and result.images
    assert replay.clock.polls == len(polls)


def _replayed(path: Path, speed: float) -> tuple[float, float, float]:
    """(wall seconds, the replay's requested sleep, wall in real-world seconds) for every request."""
    with Replay(path, speed=speed) as replay, Client(replay.config, transports=replay.transports) as client:
        replay.instrument(client)
        client.provider("gemini")  # build the SDK client before timing
        started = time.perf_counter()
        for request in replay.requests:
            try:
                client.generate(request)
            except ImageGenError:
                pass
        wall = time.perf_counter() - started
        return wall, replay.clock.slept_s, replay.to_real_seconds(wall, replay.clock.slept_s)


def test_speed_scales_the_sleeping(gemini_cassette: Path) -> None:
    recorded = sum(e["response"]["elapsed_s"] for e in interactions(gemini_cassette))
    wall_1, slept_1, real_1 = _replayed(gemini_cassette, 1.0)
    wall_8, slept_8, real_8 = _replayed(gemini_cassette, 8.0)
    # The pacing itself, exactly: every recorded second is slept, divided by the speed...
    assert abs(slept_1 - recorded) < 1e-6 and abs(slept_8 - recorded / 8) < 1e-6
    # ...the sleeps really happen (lower bounds only: a loaded machine is slower, never faster)...
    assert wall_1 >= recorded and wall_8 >= recorded / 8
    # ...and both convert back to at least the recorded real-world time.
    assert real_1 >= recorded and real_8 >= recorded


@records_wireflow_in_real_time
def test_a_scaled_recording_replays_in_real_world_seconds(wireflow_cassette: Path) -> None:
    """Recorded 50x fast (6 s job in 0.12 s): real-world latency is about 6 s, replay at 100x about 0.06 s."""
    with Replay(wireflow_cassette, speed=100) as replay, \
            Client(replay.config, transports=replay.transports) as client:
        replay.instrument(client)
        started = time.perf_counter()
        client.generate(replay.requests[0])
        wall = time.perf_counter() - started
    real = replay.to_real_seconds(wall, replay.clock.slept_s)
    # The sleeping, exactly: the recorded waits at 1/50 of real time, replayed 100x faster still.
    assert 5.0 < replay.clock.slept_s * 100 < 15.0
    # Wall time adds the client's own work (more on a loaded machine), so only loose bounds here.
    assert 5.0 < real < 15.0
    assert wall < real / 2
