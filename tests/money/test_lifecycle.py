"""The charge lifecycle: reserved, recorded when accepted, never paid again after billing."""

from __future__ import annotations

import pytest

from imagegen import (
    AllProvidersFailedError,
    BudgetExceededError,
    Client,
    JobFailedError,
    OutputUnavailableError,
)
from imagegen.testing import Fault, FaultPlan, serve

from .conftest import config_for, make_emulator

#: Every output download answers 404, however often it is tried.
GONE = FaultPlan.script(*[Fault("server_error", status=404)] * 50, path=r"^/files/")


def _books(client, *emulators):
    billed = round(sum(e.counters.total_usd for e in emulators), 9)
    return billed, client.ledger.total_usd(), client.ledger.spent_usd()


def test_a_failed_output_download_is_paid_once_and_fetched_later_for_free(tmp_path):
    emulator = make_emulator("nb2", faults=GONE)
    with serve(emulator) as server, Client(config_for({"nb2": server}, tmp_path, budget={"total_usd": 0.05})) as client:
        with pytest.raises(OutputUnavailableError) as info:
            client.generate("a fox", provider="nb2", timeout=10)
        with pytest.raises(BudgetExceededError):  # the first call's charge counts against the budget
            client.generate("a hare", provider="nb2", timeout=10)
        error = info.value
        assert error.job_id == f"nb2:{emulator.counters.charges[0]['ref']}" and len(error.urls) == 1
        stored = client.jobs.get(error.job_id)
        assert stored.status == "succeeded" and stored.result is None
        assert stored.metadata["output_urls"] == error.urls
        assert _books(client, emulator) == (0.039, 0.039, 0.039)

        emulator.faults = FaultPlan()  # the CDN is back
        result = client.wait(error.job_id, timeout=10)
        assert result.images and result.cost.usd == pytest.approx(0.039) and not result.cost.estimated
        assert client.status(error.job_id).result is not None
        assert len(emulator.counters.charges) == 1 and _books(client, emulator) == (0.039, 0.039, 0.039)


def test_submit_and_wait_are_budgeted_and_recorded(tmp_path):
    emulator = make_emulator("nb2async")
    config = config_for({"nb2async": server} if (server := serve(emulator).start()) else {}, tmp_path,
                        budget={"total_usd": 0.05})
    try:
        with Client(config) as client:
            job = client.submit("a fox", provider="nb2async")
            assert client.ledger.spent_usd() == pytest.approx(0.039)  # on record from the submit on
            with pytest.raises(BudgetExceededError):
                client.submit("a hare", provider="nb2async")
            result = client.wait(job.id, timeout=10)
            assert result.cost.usd == pytest.approx(0.039)
            assert _books(client, emulator) == (0.039, 0.039, 0.039)
    finally:
        server.stop()
    assert len(emulator.counters.charges) == 1


def test_a_route_does_not_pay_another_provider_for_an_unavailable_output(tmp_path):
    first, second = make_emulator("nb2", faults=GONE), make_emulator("gemini")
    with serve(first) as a, serve(second) as b:
        routes = {"both": {"chain": ["nb2", "gemini"]}}
        with Client(config_for({"nb2": a, "gemini": b}, tmp_path, routes=routes)) as client:
            with pytest.raises(OutputUnavailableError):
                client.generate("a fox", provider="both", timeout=10)
            assert _books(client, first, second) == (0.039, 0.039, 0.039)
        # A route that says so does move on (and both charges are on record).
        routes["both"]["fallback_on"] = ["OutputUnavailableError"]
        with Client(config_for({"nb2": a, "gemini": b}, tmp_path, routes=routes)) as client:
            result = client.generate("a hare", provider="both", timeout=10)
            assert result.provider == "gemini" and [x.outcome for x in result.attempts] == ["failed", "succeeded"]
            billed, ledger, spent = _books(client, first, second)
            assert billed == ledger == spent and len(first.counters.charges) == 2


@pytest.mark.parametrize("name", ["nb2", "wireflow"])
def test_a_truncated_output_image_is_rejected_and_fetched_again_later(tmp_path, name):
    cut = FaultPlan.script(*[Fault("truncate")] * 50, path=r"^/files/")
    emulator = make_emulator(name, faults=cut)
    with serve(emulator) as server, Client(config_for({name: server}, tmp_path)) as client:
        with pytest.raises(OutputUnavailableError, match="not a readable image") as info:
            client.generate("a fox", provider=name, timeout=10)
        assert emulator.counters.faults["truncate"] >= 2  # fetched again once, from a fresh poll
        emulator.faults = FaultPlan()
        result = client.wait(info.value.job_id, timeout=10)
        billed, ledger, spent = _books(client, emulator)
    assert result.images[0].width > 0 and len(emulator.counters.charges) == 1
    assert billed == ledger == spent > 0


def test_a_job_the_vendor_failed_costs_nothing(tmp_path):
    emulator = make_emulator("nb2async")
    with serve(emulator) as server, Client(config_for({"nb2async": server}, tmp_path)) as client:
        with pytest.raises((JobFailedError, AllProvidersFailedError)):
            client.generate("a fox emulate:fail", provider="nb2async", timeout=10)
        assert _books(client, emulator) == (0.0, 0.0, 0.0)
    assert len(emulator.counters.charges) == 2  # the charge and its refund
