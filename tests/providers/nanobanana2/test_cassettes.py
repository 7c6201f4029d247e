"""Replay of the recorded cassettes through the real Client, sync and async, with no server at all."""

from __future__ import annotations

from functools import partial

import pytest
import vcr

from imagegen import InsufficientCreditsError
from tests.providers._cassettes import (
    assert_small_filtered_cassettes,
    replay_async,
    replay_sync,
)

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
    assert_small_filtered_cassettes(CASSETTES, SCENARIOS, absent=["nb2_recording_key"],
                                    absent_any_case=["authorization"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name):
    _, call = SCENARIOS[name]
    replay_sync(replayer(), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name),
                errors=InsufficientCreditsError)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name):
    _, call = SCENARIOS[name]
    await replay_async(replayer(), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name),
                       errors=InsufficientCreditsError)
