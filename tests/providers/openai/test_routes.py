"""Routes across vendors: Gemini and OpenAI in one chain, the capability-aware skip, and a
Gemini -> OpenAI fallback under the soak's fault mix with the books balanced."""

from __future__ import annotations

import collections
import math
from contextlib import ExitStack

import pytest

from benchmarks.soak import FAULT_RATES, RETRY_AFTER_S, STALL_S
from imagegen import AnswerLostError, Client, ImageRequest, ImageResult
from imagegen.testing import FaultPlan, LatencyModel, serve
from imagegen_gemini.emulator import create_emulator as gemini_emulator
from imagegen_openai.emulator import create_emulator as openai_emulator

from .conftest import API_KEY, FAST_RETRY, mask, png


def route_config(servers, chain, **gemini):
    return {"providers": {"gemini": {"base_url": servers["gemini"].base_url, "api_key": "g-key", **gemini},
                          "openai": {"base_url": servers["openai"].base_url, "api_key": API_KEY}},
            "routes": {"cross": {"chain": chain}}, "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
            "retry": FAST_RETRY}


@pytest.fixture
def servers():
    emulators = {"gemini": gemini_emulator(image_scale=0.02), "openai": openai_emulator(image_scale=0.02)}
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve(emulator)) for name, emulator in emulators.items()}


def test_a_masked_edit_skips_gemini_and_says_why(servers):
    with Client(route_config(servers, ["gemini", "openai"])) as client:
        result = client.edit("a hat on the cat", images=[png()], mask=mask(), provider="cross")
    skipped, served = result.attempts
    assert (skipped.provider, skipped.outcome, skipped.error_type) == ("gemini", "skipped", "UnsupportedFeatureError")
    assert "masks are supported by openai" in skipped.error
    assert (served.provider, served.outcome, result.provider) == ("openai", "succeeded", "openai")


def test_4k_skips_the_provider_that_cannot_make_it(servers):
    with Client(route_config(servers, ["gemini", "openai"], model="gemini-3.1-flash-lite-image")) as client:
        wide = client.generate("a harbour at dawn", provider="cross", size="4K", aspect_ratio="16:9")
    assert [(a.provider, a.outcome) for a in wide.attempts] == [("gemini", "skipped"), ("openai", "succeeded")]
    assert "size '4K' is not supported" in wide.attempts[0].error
    assert (wide.images[0].width, wide.images[0].height) == (77, 43)  # 3840x2160 at the emulator's 2% scale
    with Client(route_config(servers, ["openai", "gemini"], model="gemini-3-pro-image")) as client:
        square = client.generate("a harbour at dawn", provider="cross", size="4K", aspect_ratio="1:1")
    assert [(a.provider, a.outcome) for a in square.attempts] == [("openai", "skipped"), ("gemini", "succeeded")]
    assert "the largest 1:1 size is 2880x2880" in square.attempts[0].error


def fallback_soak(requests: int, store, *, seed: int = 1) -> dict:
    """Gemini -> OpenAI under the soak's fault mix; returns the books (run larger by hand:
    ``python -c "from tests.providers.openai.test_routes import main; main(500)"``)."""
    emulators = {
        "gemini": gemini_emulator(image_scale=0.02, latency=LatencyModel(base=0.01, seed=seed),
                                  faults=FaultPlan.random(FAULT_RATES, seed=10 * seed + 1, retry_after=RETRY_AFTER_S,
                                                          timeout_delay=STALL_S)),
        "openai": openai_emulator(image_scale=0.02, latency=LatencyModel(base=0.01, seed=seed + 1),
                                  faults=FaultPlan.random(FAULT_RATES, seed=10 * seed + 2, retry_after=RETRY_AFTER_S,
                                                          timeout_delay=STALL_S)),
    }
    with ExitStack() as stack:
        servers = {name: stack.enter_context(serve(e)) for name, e in emulators.items()}
        config = route_config(servers, ["gemini", "openai"])
        config["providers"]["gemini"]["timeout"] = 1.0
        config["providers"]["openai"]["timeout"] = 1.0
        config["ledger"] = {"backend": "sqlite", "path": str(store / "ledger.sqlite3")}
        config["circuit"] = {"failure_threshold": 5, "cooldown_s": 0.2}
        with Client(config) as client:
            outcomes = client.generate_many(
                [ImageRequest.build(prompt=f"a lighthouse, take {i}", provider="cross", timeout=30)
                 for i in range(requests)], concurrency=10)
            entries = client.ledger.entries()
    results = [o for o in outcomes if isinstance(o, ImageResult)]
    lost = {o.job_id: o for o in outcomes if isinstance(o, AnswerLostError)}
    refs = collections.Counter(r.job_id for r in results)
    books: dict = {"results": len(results), "by_provider": collections.Counter(r.provider for r in results),
                   "errors": collections.Counter(type(o).__name__ for o in outcomes if not isinstance(o, ImageResult)),
                   "lost_answers": collections.Counter(o.provider for o in lost.values()),
                   "returned_twice": [ref for ref, n in refs.items() if n > 1], "vendors": {}}
    for name, emulator in emulators.items():
        charges = emulator.counters.charges
        books["vendors"][name] = {
            "faults": emulator.counters.faults, "charges": len(charges),
            "charged_twice": [r for r, n in collections.Counter(c["ref"] for c in charges).items() if n > 1],
            "unmatched": sum(f"{name}:{c['ref']}" not in refs for c in charges),
            "usd": math.fsum(c["usd"] for c in charges),
            "results_usd": math.fsum(r.cost.usd for r in results if r.provider == name),
            "charged_for_results_usd": math.fsum(c["usd"] for c in charges if f"{name}:{c['ref']}" in refs)}
    books["vendor_charges"] = sum(v["charges"] for v in books["vendors"].values())
    books["vendor_usd"] = math.fsum(v["usd"] for v in books["vendors"].values())
    books["ledger_charges"] = len(entries)
    books["ledger_usd"] = math.fsum(e.usd for e in entries)
    books["ledger_results_usd"] = math.fsum(e.usd for e in entries if e.job_id in refs)
    books["ledger_lost_usd"] = math.fsum(e.usd for e in entries if e.job_id in lost)
    books["ledger_lost_are_estimates"] = all(e.estimated for e in entries if e.job_id in lost)
    books["ledger_unexplained"] = [e.job_id for e in entries if e.job_id not in refs and e.job_id not in lost]
    books["results_usd"] = math.fsum(r.cost.usd for r in results)
    books["vendor_usd_for_lost"] = books["vendor_usd"] - math.fsum(
        v["charged_for_results_usd"] for v in books["vendors"].values())
    return books


def test_gemini_to_openai_fallback_under_the_soak_fault_mix_balances_the_books(tmp_path):
    """Both emulators inject the soak's mix (429s, 5xx, drops, truncations, HTML, timeouts) and bill
    as the vendors do (an answer cut after its 200 was paid for). Every vendor charge is one ledger
    charge: a result's at its reported cost, an answer lost after billing at its estimate (and an
    AnswerLostError, never a second, paid send, on this route or the next provider)."""
    books = fallback_soak(60, tmp_path)
    assert books["results"] >= 50 and set(books["by_provider"]) == {"gemini", "openai"}
    assert books["returned_twice"] == []
    for name, vendor in books["vendors"].items():
        assert vendor["charged_twice"] == [], name  # nothing billed twice
        # A charge without a result is exactly an answer lost after billing, reported as such.
        assert vendor["unmatched"] == books["lost_answers"].get(name, 0), name
        assert vendor["results_usd"] == pytest.approx(vendor["charged_for_results_usd"], abs=1e-9), name
    assert books["ledger_charges"] == books["vendor_charges"] and books["ledger_unexplained"] == []
    assert books["ledger_results_usd"] == pytest.approx(books["results_usd"], abs=1e-9)
    assert books["ledger_lost_are_estimates"]


def main(requests: int = 500) -> None:
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(fallback_soak(requests, Path(tmp)), indent=1, default=str))
