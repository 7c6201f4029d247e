"""The fixes the soak needed, one fault at a time: what happens to the money when an answer is lost."""

from __future__ import annotations

import pytest

from imagegen import AnswerLostError, Client, ProviderUnavailableError
from imagegen.testing import Fault, FaultPlan, LatencyModel, serve

FAST = {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}


def _nb2(**options):
    from imagegen_nanobanana2.emulator import create_emulator

    return create_emulator(latency=LatencyModel.none(), image_scale=0.02, **options)


def _config(name, plugin, server, **extra):
    return {"providers": {name: {"plugin": plugin, "base_url": server.base_url, "api_key": "k", **extra}},
            "jobs": {"backend": "memory"}, "retry": FAST, "cache": {"backend": "off"}}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_truncated_nb2_submit_is_followed_by_its_id_not_paid_again(mode):
    emulator = _nb2(mode=mode, faults=FaultPlan.script(Fault("truncate"), path=r"/generate$"))
    with serve(emulator) as server, Client(_config("nb2", "nanobanana2", server, poll_interval=0.01)) as client:
        result = client.generate("a fox", provider="nb2")
    assert emulator.counters.faults == {"truncate": 1}
    charges = emulator.counters.charges
    assert len(charges) == 1 and result.job_id == f"nb2:{charges[0]['ref']}"
    assert emulator.counters.calls["POST /api/v1/generate"] == 1
    assert [a.outcome for a in result.attempts] == ["succeeded"]


def test_failed_polls_are_ridden_out_without_a_second_submit():
    plan = FaultPlan.script(Fault("server_error"), Fault("rate_limit", retry_after=0.01), "drop", "html", "truncate",
                            path=r"/status/")
    emulator = _nb2(mode="async", ticks=2, faults=plan)
    with serve(emulator) as server, Client(_config("nb2", "nanobanana2", server, poll_interval=0.01)) as client:
        result = client.generate("a fox", provider="nb2")
    assert sum(emulator.counters.faults.values()) == 5
    assert emulator.counters.calls["POST /api/v1/generate"] == 1 and len(emulator.counters.charges) == 1
    assert [a.outcome for a in result.attempts] == ["succeeded"]


def test_a_status_endpoint_that_keeps_failing_ends_the_wait():
    emulator = _nb2(mode="async", ticks=2, faults=FaultPlan.random({"server_error": 1.0}, path=r"/status/"))
    config = _config("nb2", "nanobanana2", server := serve(emulator).start(), poll_interval=0.01)
    config["retry"] = {**FAST, "max_attempts": 1}
    try:
        with Client(config) as client, pytest.raises(ProviderUnavailableError):
            client.generate("a fox", provider="nb2")
    finally:
        server.stop()
    from imagegen.provider import Provider

    # The provider's wait gives up after max_poll_errors failed polls in a row; the router then
    # waits on the job it already paid for once more (instead of paying another provider), and
    # gives up after the same number again.
    assert emulator.counters.faults == {"server_error": 2 * Provider.max_poll_errors}


def test_a_truncated_gemini_answer_is_billed_once_and_not_paid_again(tmp_path):
    """Gemini has no job to fetch again: a truncated 200 was billed, so it is recorded (at the
    estimate) and reported as lost, never sent again (which would be billed again)."""
    from imagegen_gemini.emulator import create_emulator

    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.02,
                               faults=FaultPlan.script(Fault("truncate")))
    ledger = {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}
    with serve(emulator) as server, Client({**_config("gemini", "gemini", server), "ledger": ledger}) as client:
        with pytest.raises(AnswerLostError) as info:
            client.generate("a fox", provider="gemini")
        entries = client.ledger.entries()
    assert len(emulator.counters.charges) == 1
    assert [(e.job_id, e.estimated) for e in entries] == [(info.value.job_id, True)]
