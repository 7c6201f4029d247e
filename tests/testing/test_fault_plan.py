from __future__ import annotations

import threading
from collections import Counter

import pytest

from imagegen.testing import Fault, FaultPlan

API = "/v1/generate"


def _kinds(plan: FaultPlan, n: int, path: str = API) -> list[str | None]:
    return [fault.kind if fault else None for fault in (plan.pick("POST", path) for _ in range(n))]


def test_default_plan_never_faults() -> None:
    assert _kinds(FaultPlan(), 5) == [None] * 5


def test_script_replays_steps_in_order_then_passes() -> None:
    custom = Fault("server_error", status=500)
    plan = FaultPlan.script("rate_limit", None, "ok", custom, "timeout")
    faults = [plan.pick("POST", API) for _ in range(7)]
    assert [f.kind if f else None for f in faults] == [
        "rate_limit", None, None, "server_error", "timeout", None, None
    ]
    assert faults[3] is custom


def test_script_skips_the_kits_own_routes_unless_the_regex_names_them() -> None:
    plan = FaultPlan.script("drop", "drop")
    assert plan.pick("GET", "/files/abc") is None
    assert plan.pick("GET", "/_emulator/counters") is None
    assert plan.pick("POST", API) is not None
    files_plan = FaultPlan.script("truncate", path=r"^/files/")
    assert files_plan.pick("POST", API) is None
    assert files_plan.pick("GET", "/files/abc") == Fault("truncate")


def test_path_regex_is_searched_and_only_matching_requests_consume_steps() -> None:
    plan = FaultPlan.script("rate_limit", "server_error", path=r":generateContent$")
    assert plan.pick("POST", "/v1/files") is None
    assert plan.pick("POST", "/v1beta/models/m:generateContent").kind == "rate_limit"
    assert plan.pick("GET", "/v1/operations/1") is None
    assert plan.pick("POST", "/v1beta/models/m:generateContent").kind == "server_error"


def test_bad_script_steps_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        FaultPlan.script("explode")
    with pytest.raises(TypeError):
        FaultPlan.script(42)  # type: ignore[arg-type]


def test_fault_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        Fault("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault("server_error", status=99)
    with pytest.raises(ValueError):
        Fault("timeout", delay=-1)


def test_random_plan_is_deterministic_for_a_seed() -> None:
    rates = {"rate_limit": 0.3, "server_error": 0.3}
    a = _kinds(FaultPlan.random(rates, seed=7), 50)
    assert a == _kinds(FaultPlan.random(rates, seed=7), 50)
    assert a != _kinds(FaultPlan.random(rates, seed=8), 50)


def test_random_rates_are_roughly_right_over_1000_picks() -> None:
    plan = FaultPlan.random({"rate_limit": 0.2, "server_error": 0.1, "drop": 0.05}, seed=1)
    counts = Counter(_kinds(plan, 1000))
    assert 150 <= counts["rate_limit"] <= 250
    assert 60 <= counts["server_error"] <= 140
    assert 25 <= counts["drop"] <= 75
    assert 550 <= counts[None] <= 750


def test_random_faults_carry_their_hints_and_respect_path() -> None:
    plan = FaultPlan.random(
        {"rate_limit": 0.5, "timeout": 0.5}, retry_after=1.5, timeout_delay=0.25, path="gen"
    )
    assert plan.pick("GET", "/other") is None
    faults = {f.kind: f for f in (plan.pick("POST", API) for _ in range(50))}
    assert faults["rate_limit"].retry_after == 1.5
    assert faults["timeout"].delay == 0.25


@pytest.mark.parametrize(
    "rates",
    [{"rate_limit": 0.7, "server_error": 0.4}, {"rate_limit": -0.1}, {"bogus": 0.1}],
)
def test_random_rejects_bad_rates(rates: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FaultPlan.random(rates)


def test_combined_plans_take_the_first_fault_and_leave_later_scripts_alone() -> None:
    first = FaultPlan.script("rate_limit")
    second = FaultPlan.script("server_error", "html")
    combined = first + second
    assert _kinds(combined, 4) == ["rate_limit", "server_error", "html", None]
    assert _kinds(FaultPlan.combine(FaultPlan(), FaultPlan.script("drop")), 2) == ["drop", None]


def test_script_is_thread_safe() -> None:
    steps = [Fault("server_error", status=500 + i % 50) for i in range(400)]
    plan = FaultPlan.script(*steps)
    picked: list[Fault | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            fault = plan.pick("POST", API)
            with lock:
                picked.append(fault)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(f for f in picked if f) == Counter(steps)
    assert picked.count(None) == 400


def test_parse_random_spec() -> None:
    spec = "rate_limit=0.2, server_error=0.1, seed=7, retry_after=3, path=generate"
    plan = FaultPlan.parse(spec)
    rates = {"rate_limit": 0.2, "server_error": 0.1}
    expected = FaultPlan.random(rates, seed=7, retry_after=3, path="generate")
    assert _kinds(plan, 100) == _kinds(expected, 100)
    assert plan.pick("GET", "/other") is None
    picked = [plan.pick("POST", API) for _ in range(100)]
    assert {f.retry_after for f in picked if f and f.kind == "rate_limit"} == {3.0}


def test_parse_script_spec_with_parameters_and_path() -> None:
    plan = FaultPlan.parse(
        "script:rate_limit:retry_after=1,ok,server_error:status=500,malformed:body={},path=gen"
    )
    assert plan.pick("GET", "/other") is None
    assert [plan.pick("POST", API) for _ in range(5)] == [
        Fault("rate_limit", retry_after=1.0),
        None,
        Fault("server_error", status=500),
        Fault("malformed", body=b"{}"),
        None,
    ]


@pytest.mark.parametrize("spec", ["", "none", "  off  "])
def test_parse_empty_spec_means_no_faults(spec: str) -> None:
    assert _kinds(FaultPlan.parse(spec), 3) == [None] * 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("rate_limit", "has no '='"),
        ("rate_limit=lots", "not a number"),
        ("explode=0.1", "unknown fault spec key 'explode'"),
        ("rate_limit=0.8,drop=0.8", "sum to"),
        ("seed=x,drop=0.1", "not a number"),
        ("script:", "at least one step"),
        ("script:explode", "unknown script step 'explode'"),
        ("script:timeout:delay=soon", "not a number"),
        ("script:timeout:wait=1", "bad script step parameter"),
        ("script:server_error:status=700", "HTTP status"),
        ("path=(unclosed,drop=0.1", "missing"),
    ],
)
def test_parse_rejects_bad_specs_clearly(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultPlan.parse(spec)


def test_repr_describes_the_plan() -> None:
    assert "no faults" in repr(FaultPlan())
    assert "rate_limit" in repr(FaultPlan.parse("rate_limit=0.5") + FaultPlan.script("drop"))
