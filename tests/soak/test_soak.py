"""The fault soak in CI: 300 requests through three-provider routes with every fault at once.

The 1,000-request run is ``python -m benchmarks.soak --requests 1000 --write``; its table is in
``benchmarks/results/soak.md``. Both use the same harness, so what is asserted here is what the
table reports.
"""

from __future__ import annotations

import math

from benchmarks.soak import FAULT_RATES, run_soak

REQUESTS = 300


def test_soak_under_every_fault_at_once_loses_nothing_and_charges_once():
    report = run_soak(REQUESTS, concurrency=20, seed=3)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in report.rows()))

    # Every kind of fault really happened, on every provider, so the numbers below mean something.
    for name, faults in report.fault_counts.items():
        assert set(faults) == set(FAULT_RATES), (name, faults)
    # Requests end in a result or a typed error (reconcile raises on anything else); the typed
    # errors are almost all answers lost after billing (told, recorded, never paid twice).
    lost_answers = sum(report.answers_lost.values())
    assert report.results + lost_answers >= REQUESTS * 0.98, report.errors
    assert report.errors.get("AnswerLostError", 0) == lost_answers
    assert not report.duplicate_charges
    assert not report.lost_results  # every charge without a result is an AnswerLostError the caller holds
    # Wireflow sends a lost execution again with its Idempotency-Key (billed once): none lost there.
    assert report.answers_lost["wireflow"] == 0 and report.answers_lost["gemini"] > 0
    assert report.totals_match, (report.client_usd, report.results_usd, report.charged_usd_for_results)
    # Output downloads failed too (the vendors had billed those jobs), and the stores were locked
    # away from the client: still no charge twice, none lost; what the run could not fetch was
    # fetched afterwards by wait(job_id), and the ledger (its journal replayed) has every charge,
    # one for each of the vendors'.
    assert report.output_faults["nb2"] and report.output_faults["wireflow"]
    assert all(report.store_locks.values()), report.store_locks
    assert sum(report.matched.values()) == report.results + report.fetched_later
    assert report.ledger_charges == report.vendor_charges
    assert math.isclose(report.ledger_usd - report.lost_in_transit_usd, report.charged_usd_for_results, abs_tol=1e-6)
    # The answers lost are in the ledger at their estimate; the vendors billed what the lost usage said.
    assert math.isclose(report.ledger_usd - report.charged_usd_total,
                        report.lost_in_transit_usd - report.billed_for_lost_usd, abs_tol=1e-6)

def test_the_same_requests_without_faults_all_succeed_on_the_first_try():
    # Nothing stalls here, so the providers get timeouts a loaded CI machine cannot outlast (with the
    # soak's 0.5 s, a healthy loopback answer at load 8 timed out now and then and was sent again).
    report = run_soak(60, concurrency=20, seed=3, rates={}, output_rates={}, store_faults=False,
                      timeouts=dict.fromkeys(("gemini", "nb2", "wireflow"), 10.0))
    assert report.results == 60 and report.attempts == 60
    assert not any(report.fault_counts.values())
    assert report.charges == report.matched == {"gemini": 20, "nb2": 20, "wireflow": 20}
    assert report.totals_match
