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
    # Requests end in a result or a typed error (reconcile raises on anything else).
    assert report.results >= REQUESTS * 0.98, report.errors
    assert not report.duplicate_charges
    assert not report.lost_results
    # Only Gemini, a synchronous API, can be billed for an answer that never arrived, and only
    # as often as a billed answer was truncated.
    assert report.cut_in_transit["nb2"] == report.cut_in_transit["wireflow"] == 0
    assert report.cut_in_transit["gemini"] <= report.fault_counts["gemini"]["truncate"]
    assert report.totals_match, (report.client_usd, report.results_usd, report.charged_usd_for_results)
    # Output downloads failed too (the vendors had billed those jobs), and the stores were locked
    # away from the client: still no charge twice, none lost; what the run could not fetch was
    # fetched afterwards by wait(job_id), and the ledger (its journal replayed) has every charge.
    assert report.output_faults["nb2"] and report.output_faults["wireflow"]
    assert all(report.store_locks.values()), report.store_locks
    assert sum(report.matched.values()) == report.results + report.fetched_later
    assert math.isclose(report.ledger_usd - report.lost_in_transit_usd, report.charged_usd_for_results, abs_tol=1e-6)
    # Every Gemini answer the vendor billed but that was cut in transit is in the ledger, at its estimate.
    assert (report.lost_in_transit_usd > 0) == (report.cut_in_transit["gemini"] > 0)
    assert report.charged_usd_total >= report.charged_usd_for_results


def test_the_same_requests_without_faults_all_succeed_on_the_first_try():
    report = run_soak(60, concurrency=20, seed=3, rates={}, output_rates={}, store_faults=False)
    assert report.results == 60 and report.attempts == 60
    assert not any(report.fault_counts.values())
    assert report.charges == report.matched == {"gemini": 20, "nb2": 20, "wireflow": 20}
    assert report.totals_match
