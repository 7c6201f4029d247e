"""Replay of the recorded openai cassettes through the real Client, sync and async, with no server."""

from __future__ import annotations

from functools import partial

import pytest
import vcr

from imagegen import ContentPolicyError
from tests.providers._cassettes import assert_small_filtered_cassettes, replay_async, replay_sync

from .record_cassettes import API_KEY, CASSETTES, REPLAY_BASE_URL, SCENARIOS

CONFIG = {"providers": {"openai": {"base_url": REPLAY_BASE_URL, "api_key": "sk-replay"}},
          "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
          "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}}
EXPECTED_CALLS = {"rate_limit_then_success": 2}


def replayer() -> vcr.VCR:
    return vcr.VCR(record_mode="none", filter_headers=["authorization"], match_on=["method", "path"])


def check(name: str, outcome: object, cassette: object) -> None:
    assert cassette.all_played and cassette.play_count == EXPECTED_CALLS.get(name, 1)
    if name == "moderation_blocked":
        assert isinstance(outcome, ContentPolicyError) and outcome.reason == "moderation_blocked"
        return
    assert not isinstance(outcome, Exception), outcome
    assert len(outcome.images) == 1 and outcome.images[0].width > 0
    assert outcome.cost.estimated is False and outcome.cost.usd > 0
    assert outcome.job_id.startswith("openai:req_")


def test_every_scenario_has_a_cassette():
    assert_small_filtered_cassettes(CASSETTES, SCENARIOS, absent=[API_KEY], absent_any_case=["authorization"])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_sync(name):
    _, call = SCENARIOS[name]
    replay_sync(replayer(), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name), errors=ContentPolicyError)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_async(name):
    _, call = SCENARIOS[name]
    await replay_async(replayer(), CASSETTES / f"{name}.yaml", CONFIG, call, partial(check, name),
                       errors=ContentPolicyError)
