"""Acme-specific behaviour, beyond the contract: a job that fails, and jobs on a fake clock."""

from __future__ import annotations

import pytest
from imagegen_acme.emulator import create_emulator

from imagegen import Client, JobFailedError
from imagegen.testing import FakeClock, serve


def config(base_url: str) -> dict[str, object]:
    return {"providers": {"acme": {"base_url": base_url, "api_key": "k", "poll_schedule": [0.01, 1.5, 0.05]}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}


def test_a_job_is_done_when_the_clock_says_so() -> None:
    clock = FakeClock()
    emulator = create_emulator(clock=clock, running_s=30.0)
    with serve(emulator) as server, Client(config(server.base_url)) as client:
        job = client.submit("a lighthouse", provider="acme", size="S")
        assert client.status(job.id).status == "running"
        clock.advance(30.0)
        result = client.wait(job.id, timeout=5)
    assert result.images[0].width == 64 and emulator.counters.total_usd == pytest.approx(0.02)


def test_a_failed_job_is_a_job_failed_error_with_acmes_words() -> None:
    with serve(create_emulator()) as server, Client(config(server.base_url)) as client:
        with pytest.raises(JobFailedError, match="the prompt was refused"):
            client.generate("a lighthouse [[fail]]", provider="acme")
