from __future__ import annotations

import json
import threading

from imagegen.testing import Counters


def test_named_counters() -> None:
    counters = Counters()
    counters.incr("images")
    counters.incr("images", 3)
    assert counters.get("images") == 4
    assert counters.get("never") == 0


def test_charges_and_totals() -> None:
    counters = Counters()
    counters.charge(usd=0.1, ref="job-1")
    counters.charge(usd=0.2, credits=5)
    assert counters.charges == [
        {"usd": 0.1, "credits": 0.0, "ref": "job-1"},
        {"usd": 0.2, "credits": 5, "ref": None},
    ]
    assert counters.total_usd == 0.3  # not 0.30000000000000004
    assert counters.total_credits == 5


def test_snapshot_is_json_and_reset_clears_everything() -> None:
    counters = Counters()
    counters.incr("x")
    counters.charge(usd=1)
    counters._record_call("POST /generate")
    counters._record_fault("drop")
    snapshot = json.loads(json.dumps(counters.snapshot()))
    assert snapshot == {
        "calls": {"POST /generate": 1, "total": 1},
        "faults": {"drop": 1},
        "counters": {"x": 1},
        "charges": [{"usd": 1, "credits": 0.0, "ref": None}],
        "total_usd": 1.0,
        "total_credits": 0.0,
    }
    counters.reset()
    assert counters.snapshot()["calls"] == {} and counters.total_usd == 0


def test_returned_collections_are_copies() -> None:
    counters = Counters()
    counters.charge(usd=1)
    counters.charges[0]["usd"] = 99
    counters.calls["total"] = 99
    assert counters.total_usd == 1 and counters.calls == {}


def test_counters_are_thread_safe() -> None:
    counters = Counters()

    def work() -> None:
        for _ in range(2000):
            counters.incr("n")
            counters.charge(credits=1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.get("n") == 16000
    assert counters.total_credits == 16000
