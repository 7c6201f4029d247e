"""Replay of the recorded cassettes through the real Client, sync and async, with no server at all."""

from __future__ import annotations

from functools import partial

import pytest

from imagegen import BatchResult, ImageResult
from tests.providers._cassettes import (
    assert_small_filtered_cassettes,
    replay_async,
    replay_sync,
)

from .record_cassettes import (
    API_KEY,
    CASSETTES,
    EXCHANGES,
    REPLAY_BASE_URL,
    SCENARIOS,
    config,
    recorder,
)

CONFIG = config(REPLAY_BASE_URL, "gemini-replay-key")


def check(name: str, outcome: object, cassette: object) -> None:
    _, _, expected = SCENARIOS[name]
    assert cassette.all_played and cassette.play_count == EXCHANGES[name]
    assert type(outcome).__name__ == expected, outcome
    if isinstance(outcome, BatchResult):  # every member answered, charged the batch price
        assert outcome.state == "succeeded" and len(outcome.images) == len(outcome.members) >= 2
        assert all(m.result.cost.usd > 0 and m.result.metadata["batch_discount"] == 0.5 for m in outcome.members)
    elif isinstance(outcome, ImageResult):
        assert outcome.images and all(image.width > 0 for image in outcome.images)
        assert outcome.cost.estimated is False and outcome.cost.usd > 0
        assert outcome.usage.image_tokens > 0
    else:
        assert outcome.provider == "gemini" and outcome.status_code == 200 and outcome.body["usage"]


def test_every_scenario_has_a_small_filtered_cassette() -> None:
    assert_small_filtered_cassettes(CASSETTES, SCENARIOS, absent=[API_KEY, "key="], absent_any_case=["x-goog-api-key"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name: str) -> None:
    _, call, _ = SCENARIOS[name]
    replay_sync(recorder("none"), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name: str) -> None:
    _, call, _ = SCENARIOS[name]
    await replay_async(recorder("none"), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name))
