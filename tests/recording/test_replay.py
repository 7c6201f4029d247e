"""Replay through the real Client, sync and async, with no server (the network guard stays on)."""

from __future__ import annotations

import time
from pathlib import Path

from imagegen import AsyncClient, Client, ContentPolicyError, ImageGenError
from imagegen.recording import Replay
from imagegen.recording._cassette import interactions


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


async def test_replay_async_counts_polls(wireflow_cassette: Path) -> None:
    polls = [e for e in interactions(wireflow_cassette) if e["request"]["uri"].endswith("/poll")]
    with Replay(wireflow_cassette, speed=20) as replay:
        async with AsyncClient(replay.config, transports=replay.transports) as client:
            replay.instrument(client)
            result = await client.generate(replay.requests[0])
        assert replay.cassette.all_played
    assert result.provider == "wireflow" and result.images
    assert replay.clock.polls == len(polls)


def _replayed(path: Path, speed: float) -> tuple[float, float]:
    """(wall seconds, the same in real-world seconds) for replaying every request; best of two."""
    runs = []
    for _ in range(2):
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
            runs.append((wall, replay.to_real_seconds(wall, replay.clock.slept_s)))
    return min(runs)


def test_speed_scales_the_sleeping(gemini_cassette: Path) -> None:
    recorded = sum(e["response"]["elapsed_s"] for e in interactions(gemini_cassette))
    _replayed(gemini_cassette, 100.0)  # the first calls in a process import and build more: warm up
    wall_1, real_1 = _replayed(gemini_cassette, 1.0)
    wall_8, real_8 = _replayed(gemini_cassette, 8.0)
    # At recorded speed the calls take at least the recorded time; 8x faster saves 7/8 of it
    # (the client's own time, the same in both, cancels out)...
    assert wall_1 >= recorded
    assert 0.7 < (wall_1 - wall_8) / (recorded * 7 / 8) < 1.3
    # ...and both convert back to the same real-world time.
    assert 0.8 < real_8 / real_1 < 1.25


def test_a_scaled_recording_replays_in_real_world_seconds(wireflow_cassette: Path) -> None:
    """Recorded 50x fast (6 s job in 0.12 s): real-world latency is about 6 s, replay at 100x about 0.06 s."""
    with Replay(wireflow_cassette, speed=100) as replay, \
            Client(replay.config, transports=replay.transports) as client:
        replay.instrument(client)
        started = time.perf_counter()
        client.generate(replay.requests[0])
        wall = time.perf_counter() - started
    real = replay.to_real_seconds(wall, replay.clock.slept_s)
    assert 5.0 < real < 15.0
    assert wall / real < 0.05
