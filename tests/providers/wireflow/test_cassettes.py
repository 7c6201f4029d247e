"""Replay of the recorded cassettes through the real Client, sync and async, with no server."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import yaml

from imagegen import ImageResult
from tests.providers._cassettes import (
    assert_small_filtered_cassettes,
    replay_async,
    replay_sync,
)

from .record_cassettes import (
    API_KEY,
    CASSETTES,
    REPLAY_BASE_URL,
    SCENARIOS,
    config,
    recorder,
)

CONFIG = config(REPLAY_BASE_URL, "sk-wireflow-replay-key")


def _statuses(name: str) -> list[str]:
    """The poll answers' statuses, in recorded order."""
    data = yaml.safe_load((CASSETTES / f"{name}.yaml").read_text(encoding="utf-8"))
    found = []
    for exchange in data["interactions"]:
        if exchange["request"]["uri"].endswith("/poll"):
            body = yaml.safe_load(exchange["response"]["body"]["string"])
            found.append(body.get("data", body)["status"])
    return found


def check(name: str, outcome: Any, cassette: Any) -> None:
    _, _, expected, polls = SCENARIOS[name]
    assert cassette.all_played, f"{len(cassette.data) - cassette.play_count} exchanges not replayed"
    assert type(outcome).__name__ == expected, outcome
    if isinstance(outcome, ImageResult):
        assert outcome.images and all(image.width > 0 and image.url for image in outcome.images)
        assert outcome.provider == "wireflow" and outcome.cost.credits > 0
    else:
        assert outcome.provider == "wireflow"
    if polls:
        statuses = _statuses(name)
        assert len(statuses) >= 2 and statuses[0] == "RUNNING" and statuses[-1] in ("COMPLETED", "FAILED")


def test_every_scenario_has_a_small_filtered_cassette() -> None:
    assert_small_filtered_cassettes(CASSETTES, SCENARIOS, absent=[API_KEY, "Bearer"], absent_any_case=["authorization"])


def test_rate_limit_cassette_holds_the_429() -> None:
    data = yaml.safe_load((CASSETTES / "rate_limit_then_success.yaml").read_text(encoding="utf-8"))
    codes = [e["response"]["status"]["code"] for e in data["interactions"] if "/execute" in e["request"]["uri"]]
    assert codes == [429, 201]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name: str) -> None:
    _, call, _, _ = SCENARIOS[name]
    replay_sync(recorder("none"), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name: str) -> None:
    _, call, _, _ = SCENARIOS[name]
    await replay_async(recorder("none"), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name))
