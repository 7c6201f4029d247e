"""Fallback, retries and circuit breaking, against the real provider emulators over loopback."""

import time

import pytest

from imagegen import AllProvidersFailedError, Client, ProviderUnavailableError
from imagegen.testing import Fault, FaultPlan

from .conftest import providers_config

FAST_RETRY = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}


def route_config(gemini_emulator, nb2_emulator, **extra):
    return {"providers": providers_config(gemini=gemini_emulator, nb2=nb2_emulator),
            "routes": {"reliable": {"chain": ["gemini", "nb2"]}}, "default": "reliable",
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}, "retry": FAST_RETRY, **extra}


def test_primary_failing_with_503_falls_back_to_the_second(gemini_emulator, nb2_emulator):
    gemini_emulator.emulator.faults = FaultPlan.random({"server_error": 1.0})
    with Client(route_config(gemini_emulator, nb2_emulator)) as client:
        result = client.generate("a red fox")
    assert result.provider == "nb2" and result.images
    assert [(a.provider, a.outcome) for a in result.attempts] == [("gemini", "failed")] * 3 + [("nb2", "succeeded")]
    assert {a.status_code for a in result.attempts[:3]} == {503}
    assert gemini_emulator.emulator.counters.faults.get("server_error") == 3
    assert not gemini_emulator.emulator.counters.charges


def test_rate_limit_hint_is_waited_then_succeeds(gemini_emulator, nb2_emulator):
    nb2_emulator.emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=1))  # whole seconds on the wire
    with Client(route_config(gemini_emulator, nb2_emulator)) as client:
        started = time.monotonic()
        result = client.generate("a red fox", provider="nb2")
        elapsed = time.monotonic() - started
    assert result.provider == "nb2"
    assert result.attempts[0].error_type == "RateLimitError" and result.attempts[0].wait_s == 1.0
    assert 0.95 <= elapsed < 5
    assert len(nb2_emulator.emulator.counters.charges) == 1


def test_a_hint_past_the_deadline_moves_on_at_once(gemini_emulator, nb2_emulator):
    gemini_emulator.emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=600))
    with Client(route_config(gemini_emulator, nb2_emulator)) as client:
        started = time.monotonic()
        result = client.generate("a red fox", timeout=30)
    assert time.monotonic() - started < 5
    assert [a.provider for a in result.attempts] == ["gemini", "nb2"]
    assert result.attempts[0].retry_after == 600


def test_everything_failing_reports_every_attempt(gemini_emulator, nb2_emulator):
    for server in (gemini_emulator, nb2_emulator):
        server.emulator.faults = FaultPlan.random({"server_error": 1.0})
    with Client(route_config(gemini_emulator, nb2_emulator)) as client:
        with pytest.raises(AllProvidersFailedError) as info:
            client.generate("a red fox")
    assert [a.provider for a in info.value.attempts] == ["gemini"] * 3 + ["nb2"] * 3
    assert all(a.error_type == "ProviderUnavailableError" for a in info.value.attempts)


def test_circuit_opens_skips_then_probes_and_closes(gemini_emulator, nb2_emulator):
    gemini = gemini_emulator.emulator
    gemini.faults = FaultPlan.random({"server_error": 1.0})
    config = route_config(gemini_emulator, nb2_emulator, circuit={"failure_threshold": 3, "cooldown_s": 0.5},
                          retry={**FAST_RETRY, "max_attempts": 1})
    with Client(config) as client:
        for _ in range(3):
            assert client.generate("fox").provider == "nb2"
        assert client.circuit_state("gemini")["state"] == "open"
        calls = gemini.counters.get("total")
        skipped = client.generate("fox")
        assert skipped.attempts[0].outcome == "failed" and "circuit is open" in skipped.attempts[0].error
        assert gemini.counters.get("total") == calls  # not even tried
        with pytest.raises(ProviderUnavailableError, match="circuit is open"):
            client.generate("fox", provider="gemini")

        time.sleep(0.6)
        gemini.faults = FaultPlan()
        assert client.generate("fox").provider == "gemini"  # the probe
        assert client.circuit_state("gemini") == {"state": "closed", "failures": 0, "retry_in_s": None}


def test_a_failed_probe_reopens_the_circuit(gemini_emulator, nb2_emulator):
    gemini_emulator.emulator.faults = FaultPlan.random({"server_error": 1.0})
    config = route_config(gemini_emulator, nb2_emulator, circuit={"failure_threshold": 1, "cooldown_s": 0.2},
                          retry={**FAST_RETRY, "max_attempts": 1})
    with Client(config) as client:
        client.generate("fox")
        assert client.circuit_state("gemini")["state"] == "open"
        time.sleep(0.3)
        client.generate("fox")  # probe fails
        assert client.circuit_state("gemini")["state"] == "open"


def test_refusals_do_not_trip_the_circuit(gemini_emulator, nb2_emulator):
    config = route_config(gemini_emulator, nb2_emulator, circuit={"failure_threshold": 1, "cooldown_s": 60})
    with Client(config) as client:
        result = client.generate("a fox [[IMAGE_SAFETY]]")
        assert result.provider == "nb2"
        assert result.attempts[0].error_type == "ContentPolicyError"
        assert client.circuit_state("gemini")["state"] == "closed"


def test_a_retried_wireflow_execute_reuses_its_idempotency_key():
    """The first execute runs but its answer is cut short; the router's retry must not run it twice."""
    from imagegen.testing import LatencyModel, serve
    from imagegen_wireflow.emulator import create_emulator

    emulator = create_emulator(latency=LatencyModel.none(),
                               faults=FaultPlan.script(Fault("truncate"), path=r"/execute$"))
    with serve(emulator) as server:
        config = {"providers": providers_config(wireflow=server), "jobs": {"backend": "memory"},
                  "cache": {"backend": "off"}, "retry": FAST_RETRY}
        config["providers"]["wireflow"]["poll_schedule"] = [0.01, 1.5, 0.05]
        with Client(config) as client:
            result = client.generate("a fox", provider="wireflow")
    assert result.images
    assert [a.error_type for a in result.attempts] == ["InvalidResponseError", None]
    assert emulator.counters.get("executions") == 1, emulator.counters.snapshot()
    assert emulator.counters.faults == {"truncate": 1}


def test_a_provider_failing_after_accepting_the_job_is_waited_on_not_replaced(gemini_emulator):
    """nb2 accepted the job, then its status endpoint failed again and again: the route must not
    pay gemini for the same request while nb2's job can still finish."""
    from imagegen.testing import LatencyModel, serve
    from imagegen_nanobanana2.emulator import create_emulator

    nb2 = create_emulator(mode="async", latency=LatencyModel.none(), image_scale=0.05,
                          faults=FaultPlan.script(*["server_error"] * 12, path=r"/status/"))
    with serve(nb2) as nb2_server:
        providers = providers_config(nb2=nb2_server, gemini=gemini_emulator)
        providers["nb2"]["poll_interval"] = 0.01
        config = {"providers": providers, "routes": {"r": {"chain": ["nb2", "gemini"]}}, "default": "r",
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
                  "retry": {**FAST_RETRY, "max_attempts": 1}}
        with Client(config) as client:
            result = client.generate("a patient fox")
    assert result.provider == "nb2"
    assert sum(v for k, v in nb2.counters.calls.items() if k.endswith("/generate")) == 1
    assert gemini_emulator.emulator.counters.get("total") == 0
    assert any("waited for that job" in w for w in result.warnings)
