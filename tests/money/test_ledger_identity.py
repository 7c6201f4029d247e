"""A charge's identity is (job id, idempotency key), on the SQLite and the Redis ledger alike."""

from __future__ import annotations

import uuid

import pytest

from imagegen._ledger import BudgetLimits, Ledger, RedisLedger

CHARGE = {"provider": "p", "model": "m", "credits": None, "cached": False}


@pytest.fixture(params=["sqlite", "redis"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        return Ledger(tmp_path / "ledger.sqlite3")
    return RedisLedger(request.getfixturevalue("redis_url"), prefix=f"t{uuid.uuid4().hex}:")


def _reserve(ledger, usd):
    return ledger.reserve(provider="p", model="m", usd=usd, limits=BudgetLimits(total_usd=100.0))


def _totals(ledger):
    return [(e.job_id, e.key, e.usd, e.estimated) for e in ledger.entries()], ledger.total_usd(), ledger.spent_usd()


def test_an_estimate_settled_again_becomes_the_reported_cost(ledger):
    held = _reserve(ledger, 0.05)
    ledger.settle(held, usd=0.05, credits=None, job_id="p:1", cached=False, estimated=True, key="k")
    ledger.settle(held, usd=0.039, credits=4, job_id="p:1", cached=False, estimated=False, key="k")
    assert _totals(ledger) == ([("p:1", "k", 0.039, False)], 0.039, 0.039)


def test_the_same_charge_recorded_again_is_one_charge(ledger):
    for _ in range(3):
        ledger.record(usd=0.5, job_id="p:1", key="k", estimated=False, **CHARGE)
    held = _reserve(ledger, 0.5)  # a resumed job's settlement finds the charge already there
    ledger.settle(held, usd=0.5, credits=None, job_id="p:1", cached=False, estimated=False, key="k")
    assert _totals(ledger) == ([("p:1", "k", 0.5, False)], 0.5, 0.5)


def test_two_charges_sharing_a_job_id_are_not_merged(ledger):
    ledger.record(usd=0.5, job_id="p:1", key="a", estimated=False, **CHARGE)
    ledger.record(usd=0.5, job_id="p:1", key="b", estimated=False, **CHARGE)
    assert ledger.total_usd() == ledger.spent_usd() == 1.0


def test_an_unknown_key_finds_the_jobs_charge(ledger):
    ledger.record(usd=0.05, job_id="p:1", key="a", estimated=True, **CHARGE)
    ledger.record(usd=0.04, job_id="p:1", key=None, estimated=False, **CHARGE)
    assert _totals(ledger) == ([("p:1", "a", 0.04, False)], 0.04, 0.04)


def test_a_reported_cost_is_never_replaced_by_an_estimate(ledger):
    ledger.record(usd=0.04, job_id="p:1", key="a", estimated=False, **CHARGE)
    ledger.record(usd=0.05, job_id="p:1", key="a", estimated=True, **CHARGE)
    assert _totals(ledger) == ([("p:1", "a", 0.04, False)], 0.04, 0.04)


def test_a_voided_charge_is_gone_from_totals_and_budgets(ledger):
    held = _reserve(ledger, 0.05)
    ledger.settle(held, usd=0.05, credits=None, job_id="p:1", cached=False, estimated=True, key="k")
    ledger.void(job_id="p:1", key="k")
    assert _totals(ledger) == ([], 0.0, 0.0)


def test_charges_without_a_job_id_are_kept_apart_unless_they_are_the_same_entry(ledger):
    ledger.record(usd=0.1, job_id=None, key="k", estimated=True, **CHARGE)
    ledger.record(usd=0.1, job_id=None, key="k", estimated=True, **CHARGE)
    ledger.record(usd=0.2, job_id=None, key="k", estimated=True, entry_id="j1", **CHARGE)
    ledger.record(usd=0.2, job_id=None, key="k", estimated=True, entry_id="j1", **CHARGE)  # replayed
    assert ledger.total_usd() == ledger.spent_usd() == 0.4


def test_a_released_reservation_counts_nothing(ledger):
    ledger.release(_reserve(ledger, 0.3))
    assert _totals(ledger) == ([], 0.0, 0.0)
