"""Replay of the recorded cassettes through the real Client, sync and async, with no server at all."""

from __future__ import annotations

import inspect

import pytest
import vcr

from imagegen import AsyncClient, Client, InsufficientCreditsError

from .record_cassettes import CASSETTES, REPLAY_BASE_URL, SCENARIOS, SETTINGS

CONFIG = {"providers": {"nanobanana2": {"base_url": REPLAY_BASE_URL, "api_key": "nb2_replay", **SETTINGS}},
          "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
EXPECTED_CALLS = {"generate_sync": 2, "generate_async_polls": 4, "edit": 2, "blend": 2,
                  "insufficient_credits_402": 1, "rate_limit_then_success": 3}


def replayer() -> vcr.VCR:
    return vcr.VCR(record_mode="none", filter_headers=["authorization"])


def check(name: str, outcome: object, cassette: object) -> None:
    assert cassette.all_played and cassette.play_count == EXPECTED_CALLS[name]
    if name == "insufficient_credits_402":
        assert isinstance(outcome, InsufficientCreditsError) and outcome.status_code == 402
        return
    assert not isinstance(outcome, Exception), outcome
    assert len(outcome.images) == 1 and outcome.images[0].width > 0
    assert outcome.cost.estimated is False and outcome.cost.credits == 4


def test_every_scenario_has_a_cassette():
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == sorted(SCENARIOS)
    for path in CASSETTES.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert "nb2_recording_key" not in text and "authorization" not in text.lower()
        assert path.stat().st_size < 50_000


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name):
    _, call = SCENARIOS[name]
    with replayer().use_cassette(str(CASSETTES / f"{name}.yaml")) as cassette, Client(CONFIG) as client:
        try:
            outcome = call(client)
        except InsufficientCreditsError as exc:
            outcome = exc
        check(name, outcome, cassette)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name):
    _, call = SCENARIOS[name]
    with replayer().use_cassette(str(CASSETTES / f"{name}.yaml")) as cassette:
        async with AsyncClient(CONFIG) as client:
            try:
                outcome = call(client)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except InsufficientCreditsError as exc:
                outcome = exc
        check(name, outcome, cassette)
