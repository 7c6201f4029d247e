"""The adaptive poll schedule: polls where jobs finish, then the documented backoff."""

from __future__ import annotations

import itertools

import pytest

from imagegen import AsyncClient
from imagegen.provider import AdaptivePollSchedule, PollSchedule
from imagegen.recording import ReplayClock, ScaledPollSchedule
from imagegen.testing import LatencyModel, serve


def test_polls_sit_at_quantiles_then_back_off() -> None:
    schedule = AdaptivePollSchedule.from_latencies(range(1, 101), polls=5, low=0.0, high=1.0,
                                                   then=PollSchedule(1.0, 2.0, 4.0))
    assert schedule.times == (1.0, 26.0, 51.0, 75.0, 100.0)
    delays = list(itertools.islice(schedule.delays(), 8))
    assert delays == [1.0, 25.0, 25.0, 24.0, 25.0, 1.0, 2.0, 4.0]


def test_dense_where_jobs_finish() -> None:
    # Most jobs take 5-6 s, a few 30 s: the planned polls crowd into 5-6 s.
    latencies = [5.0 + i / 100 for i in range(100)] + [30.0] * 5
    schedule = AdaptivePollSchedule.from_latencies(latencies, polls=6)
    assert sum(5.0 <= t <= 6.0 for t in schedule.times) >= 5


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        AdaptivePollSchedule.from_latencies([])
    with pytest.raises(ValueError):
        AdaptivePollSchedule.from_latencies([1.0], polls=0)


async def test_wireflow_default_follows_a_job_on_the_emulator() -> None:
    """The provider's default (adaptive) schedule, sped up 50x like the emulator, sees a 1K job end."""
    from imagegen_wireflow.emulator import create_emulator, default_latency
    from imagegen_wireflow.provider import WireflowProvider

    assert isinstance(WireflowProvider.poll_schedule, AdaptivePollSchedule)
    model = default_latency()
    emulator = create_emulator(latency=LatencyModel(base=model.base, per_megapixel=model.per_megapixel,
                                                    jitter=model.jitter, scale=0.02, seed=3), output_max_side=32)
    with serve(emulator) as server:
        config = {"providers": {"wireflow": {"base_url": server.base_url, "api_key": "sk-test",
                                             "persist_workflows": False}},
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
        async with AsyncClient(config) as client:
            provider = client.provider("wireflow")
            provider.poll_schedule = ScaledPollSchedule(provider.poll_schedule, 0.02, ReplayClock())
            results = [await client.generate(f"job {i}", provider="wireflow", size="1K") for i in range(4)]
    assert all(r.images for r in results)
    runs = list(emulator.executions.values())
    assert all(1 <= run.polls <= 4 for run in runs), [run.polls for run in runs]
