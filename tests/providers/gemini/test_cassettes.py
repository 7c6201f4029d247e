"""Replay of the recorded cassettes through the real Client, sync and async, with no server at all."""

from __future__ import annotations

import inspect

import pytest

from imagegen import AsyncClient, Client, ImageGenError, ImageResult

from .record_cassettes import API_KEY, CASSETTES, EXCHANGES, REPLAY_BASE_URL, SCENARIOS, config, recorder

CONFIG = config(REPLAY_BASE_URL, "gemini-replay-key")


def check(name: str, outcome: object, cassette: object) -> None:
    _, _, expected = SCENARIOS[name]
    assert cassette.all_played and cassette.play_count == EXCHANGES[name]
    assert type(outcome).__name__ == expected, outcome
    if isinstance(outcome, ImageResult):
        assert outcome.images and all(image.width > 0 for image in outcome.images)
        assert outcome.cost.estimated is False and outcome.cost.usd > 0
        assert outcome.usage.image_tokens > 0
    else:
        assert outcome.provider == "gemini" and outcome.status_code == 200 and outcome.body["usage"]


def test_every_scenario_has_a_small_filtered_cassette() -> None:
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == sorted(SCENARIOS)
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert API_KEY not in text and "x-goog-api-key" not in text.lower() and "key=" not in text
        assert path.stat().st_size < 50_000


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name: str) -> None:
    _, call, _ = SCENARIOS[name]
    with recorder("none").use_cassette(str(CASSETTES / f"{name}.yaml")) as cassette, Client(CONFIG) as client:
        try:
            outcome = call(client)
        except ImageGenError as exc:
            outcome = exc
        check(name, outcome, cassette)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name: str) -> None:
    _, call, _ = SCENARIOS[name]
    with recorder("none").use_cassette(str(CASSETTES / f"{name}.yaml")) as cassette:
        async with AsyncClient(CONFIG) as client:
            try:
                outcome = call(client)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except ImageGenError as exc:
                outcome = exc
        check(name, outcome, cassette)
