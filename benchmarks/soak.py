"""Fault soak: many requests through a three-provider route while every emulator misbehaves.

The gemini, nanobanana2 (async jobs) and wireflow emulators run on loopback, each with its
own seeded random fault plan injecting, at once: 20% 429 with a wait hint, 10% 5xx, 5%
dropped connections, 2% truncated bodies, 2% HTML error pages and 1% answers slower than
the provider's timeout. Requests take turns over three three-provider routes
(``gemini -> nb2 -> wireflow`` and its two rotations) with the client's normal retries,
circuit breaker and SQLite job store (all timings scaled down).

Afterwards the emulators' books are reconciled with what the client got back:

- every charge is matched to the result whose job id it names (a charge matched twice, or
  a job id charged twice, is a **duplicate charge**);
- a charge for an answer lost after its 2xx status (cut mid-body, stalled, unreadable: the
  emulators bill those as the vendors do) is one the caller was told of by an
  ``AnswerLostError``, and the ledger holds it, at its estimate, under that error's job id:
  per provider, charges without a result == ``AnswerLostError`` count, exactly;
- any other charge without a result is a **lost result** (must be zero);
- the ledger has exactly one charge per emulator charge, and its total less what it holds (at
  the estimate) for the answers lost equals the emulators' charges for the results.

    python -m benchmarks.soak --requests 1000 [--concurrency 20] [--seed 1] [--write]

``--write`` also runs the same requests with no faults (the baseline) and writes
``benchmarks/results/soak.md`` with the wall-time ratio.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen import AllProvidersFailedError, AnswerLostError, Client, ImageGenError, ImageRequest, ImageResult
from imagegen._config import Config
from imagegen.testing import FaultPlan, LatencyModel, LoopbackServer, serve

from ._soak_faults import OUTPUT_FAULT_RATES, CountedFaults, StoreLocks, fetch_unreturned, output_faults

RESULTS = Path(__file__).parent / "results" / "soak.md"
NOTES = """
Reading it:

- *Duplicate charges* (a job billed twice, or one result returned for two requests) and *results
  lost* (a billed job whose result could have been fetched but was not returned) must be 0.
- *Billed answers lost after their 2xx*: a vendor bills a call it answered, even when the answer
  is cut mid-body (drop), stalls past the read timeout or cannot be read (truncate), and the
  emulators bill those too. Sending such a call again would pay twice (Gemini and nano-banana2
  take no idempotency key), so imagegen records the charge at its estimate, never sends it
  again (nor moves to the next provider of the route) and raises AnswerLostError with the job
  id the ledger keeps it under. nano-banana2 follows a truncated submit answer by the job id at
  its head instead; Wireflow sends a lost execution again with the same Idempotency-Key, which
  the vendor answers with the execution it billed, so neither counts here.
- The client total is the ledger's when the ledger is configured, else the sum of result.cost;
  both are shown and both equal the emulators' charges for the results.
- *Output downloads* fail too (5xx, HTML pages, truncated images, stalls on the emulators'
  /files/ routes): those jobs are billed, so the client never submits them again. Most recover
  by the client's own retries; the rest end in OutputUnavailableError and are *fetched after
  the run by wait(job_id)*, without a new charge: they count as results for the books.
- *Store write locks*: the ledger's and the job store's write locks are held away from the
  client in turns (2.5 s on, 1 s off). A paid call waits 2 s for a store at most; past that its
  result comes back with a warning and its charge goes to the journal, which the next client
  replays into the ledger (the ledger total above is read after that replay).
- *Ledger - emulator charges, all*: one ledger charge per vendor charge; the only difference in
  dollars is the answers lost, which the ledger holds at their estimate while the vendor billed
  what their lost usage said (Gemini bills by tokens; nano-banana2's price is per image, so its
  estimate is exact).
"""

#: The issue's mix; the rest of the requests pass. ``timeout`` stalls past the provider timeout.
FAULT_RATES = {"rate_limit": 0.20, "server_error": 0.10, "drop": 0.05, "truncate": 0.02, "html": 0.02,
               "timeout": 0.01}
#: Wait hint sent with every injected 429 (the router honours it, so it is kept small).
RETRY_AFTER_S = 0.05
#: Per-request HTTP timeouts (Gemini's provider never goes below 1 s) and the stall past them.
TIMEOUTS = {"gemini": 1.0, "nb2": 0.5, "wireflow": 0.5}
STALL_S = 1.5
PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow"}
#: Every request goes through a three-provider route; the routes take turns at going first,
#: so each provider carries a third of the traffic instead of only the first one's overflow.
ROUTES = (["gemini", "nb2", "wireflow"], ["nb2", "wireflow", "gemini"], ["wireflow", "gemini", "nb2"])


@dataclass
class SoakReport:
    requests: int
    seconds: float
    results: int
    errors: dict[str, int]
    fault_counts: dict[str, dict[str, int]]
    charges: dict[str, int]
    matched: dict[str, int]
    duplicate_charges: list[str]
    #: Per provider: answers lost after their 2xx (AnswerLostError), and the charges without a
    #: result they explain.
    answers_lost: dict[str, int]
    lost_results: list[str]
    client_usd: float
    charged_usd_for_results: float
    charged_usd_total: float
    cost_source: str
    results_usd: float = 0.0
    #: What the ledger recorded, at the estimate, for the answers lost after billing.
    lost_in_transit_usd: float = 0.0
    #: What the emulators billed for those answers (their charges without a result).
    billed_for_lost_usd: float = 0.0
    #: Charges in the ledger (journal replayed) and in the emulators' books.
    ledger_charges: int = 0
    vendor_charges: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)
    attempts: int = 0
    #: Billed jobs whose images the run could not fetch, fetched afterwards by wait(job_id).
    fetched_later: int = 0
    #: How often each store's write lock was held away from the client.
    store_locks: dict[str, int] = field(default_factory=dict)
    #: Results whose charge went to the journal (the ledger was locked).
    journalled: int = 0
    #: Of the faults injected, those on output downloads (the emulators' /files/ routes).
    output_faults: dict[str, dict[str, int]] = field(default_factory=dict)
    ledger_usd: float = 0.0

    @property
    def totals_match(self) -> bool:
        """The books balance: the client's total, less what it recorded (at the estimate) for answers
        lost in transit, equals the vendors' charges for the results it returned."""
        return (math.isclose(self.client_usd - self.lost_in_transit_usd, self.charged_usd_for_results,
                             abs_tol=1e-6)
                and math.isclose(self.results_usd, self.charged_usd_for_results, abs_tol=1e-6)
                and (self.cost_source != "ledger" or self.ledger_charges == self.vendor_charges))

    def rows(self) -> list[tuple[str, str]]:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        faults = "; ".join(f"{p}: " + ", ".join(f"{k} {v}" for k, v in sorted(f.items()))
                           for p, f in self.fault_counts.items())
        cut = ", ".join(f"{p} {n}" for p, n in self.answers_lost.items() if n) or "0"
        return [
            ("requests", str(self.requests)),
            ("ended in a result", f"{self.results} ({self.results / self.requests:.1%})"),
            ("results by provider", ", ".join(f"{p} {n}" for p, n in self.by_provider.items())),
            ("typed errors by class", errors),
            ("provider calls tried (attempts)", str(self.attempts)),
            ("faults injected", faults),
            ("of which on output downloads", "; ".join(f"{p}: " + ", ".join(f"{k} {v}" for k, v in sorted(f.items()))
                                                       for p, f in self.output_faults.items() if f) or "none"),
            ("charges (emulators)", ", ".join(f"{p} {n}" for p, n in self.charges.items())),
            ("charges matched to a result", ", ".join(f"{p} {n}" for p, n in self.matched.items())),
            ("duplicate charges", str(len(self.duplicate_charges))),
            ("billed answers lost after their 2xx (AnswerLostError: recorded, never sent again)", cut),
            ("charges without a result, explained by those errors", "all" if not self.lost_results else "NO"),
            ("billed jobs fetched after the run by wait(job_id), without paying again", str(self.fetched_later)),
            ("results lost (charged, recoverable, not returned)", str(len(self.lost_results))),
            ("store write locks held away from the client (ledger, job store)",
             ", ".join(f"{k.split('.')[0]} {v}" for k, v in self.store_locks.items()) or "none"),
            ("results whose charge went to the journal (ledger locked), replayed at the next start",
             str(self.journalled)),
            ("charges: ledger (journal replayed) / emulators",
             f"{self.ledger_charges} / {self.vendor_charges}" if self.cost_source == "ledger" else "-"),
            (f"client total ({self.cost_source})", f"${self.client_usd:.6f}"),
            ("of which: billed answers lost, at their estimate", f"${self.lost_in_transit_usd:.6f}"),
            ("emulator charges for those answers", f"${self.billed_for_lost_usd:.6f}"),
            ("sum of result.cost", f"${self.results_usd:.6f}"),
            ("emulator charges for those results", f"${self.charged_usd_for_results:.6f}"),
            ("emulator charges, all", f"${self.charged_usd_total:.6f}"),
            ("client total - answers lost == charges for results; one ledger charge per vendor charge",
             "yes" if self.totals_match else "NO"),
            ("ledger (journal replayed) - emulator charges, all",
             f"${self.ledger_usd - self.charged_usd_total:+.6f} (= estimate - billed for the answers lost: "
             f"${self.lost_in_transit_usd - self.billed_for_lost_usd:+.6f})" if self.cost_source == "ledger" else "-"),
            ("wall time", f"{self.seconds:.1f} s"),
        ]


def _emulators(rates: dict[str, float], seed: int, output_rates: dict[str, float], requests: int) -> dict[str, Any]:
    from imagegen_gemini.emulator import create_emulator as gemini
    from imagegen_nanobanana2.emulator import create_emulator as nb2
    from imagegen_wireflow.emulator import create_emulator as wireflow

    def plan(offset: int) -> FaultPlan:
        # The output-download plan first: it is the only one that looks at /files/.
        outputs = output_faults(output_rates, seed=seed * 100 + 50 + offset, stall_s=STALL_S)
        if not rates:
            return outputs
        return outputs + FaultPlan.random(rates, seed=seed * 100 + offset, retry_after=RETRY_AFTER_S,
                                          timeout_delay=STALL_S)

    def latency(base: float) -> LatencyModel:
        return LatencyModel(base=base, jitter=0.5, seed=seed)

    # CountedFaults: a plan (as the emulators take) that also counts what it picked for /files/.
    emulators = {
        "gemini": gemini(faults=CountedFaults(plan(1)), latency=latency(0.02), image_scale=0.02),
        "nb2": nb2(faults=CountedFaults(plan(2)), latency=latency(0.02), mode="async", ticks=2,
                   image_scale=0.02, initial_credits=1e9),
        "wireflow": wireflow(faults=CountedFaults(plan(3)), latency=latency(0.05),
                             output_max_side=32, executions_per_minute=1e9, requests_per_minute=1e9),
    }
    for emulator in emulators.values():
        # Outputs stay fetchable for the whole run (by default an emulator forgets all but its last
        # 256 files, as a vendor's signed URLs expire): a job whose images could not be fetched
        # during the run is fetched afterwards, as a user would within the vendor's retention.
        emulator.max_files = requests * 4
    return emulators


def soak_config(servers: dict[str, LoopbackServer], store: Path,
                timeouts: dict[str, float] | None = None) -> dict[str, Any]:
    """Client config for the soak; ``store`` is a directory for the job store and the ledger."""
    timeouts = timeouts or TIMEOUTS
    providers: dict[str, dict[str, Any]] = {
        name: {"plugin": PLUGINS[name], "base_url": server.base_url, "api_key": f"soak-{name}-key",
               "timeout": timeouts[name]} for name, server in servers.items()}
    providers["nb2"]["poll_interval"] = 0.01
    providers["wireflow"].update(poll_schedule=[0.01, 1.5, 0.05], executions_per_minute=1e9,
                                 requests_per_minute=1e9, persist_workflows=False)
    config = {"providers": providers, "routes": {f"soak{i}": {"chain": chain} for i, chain in enumerate(ROUTES)},
              "default": "soak0", "jobs": {"backend": "sqlite", "path": str(store / "jobs.sqlite3")},
              "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05},
              "circuit": {"failure_threshold": 5, "cooldown_s": 0.2}}
    # Every request must reach a provider (no cache hits), and the ledger must hold this run only.
    fields = Config.model_fields
    if "cache" in fields:
        config["cache"] = {"backend": "off"}
    if "ledger" in fields:
        config["ledger"] = {"backend": "sqlite", "path": str(store / "ledger.sqlite3")}
    return config


@contextlib.contextmanager
def running(emulators: dict[str, Any]) -> Iterator[dict[str, LoopbackServer]]:
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serve(emulator)) for name, emulator in emulators.items()}


def _client_total(client: Client, results: list[ImageResult],
                  outcomes: list[Any]) -> tuple[float, float, int, str]:
    """(total spend the client knows of, the part of it for the answers lost after billing, its
    number of charges, source)."""
    ledger = client.ledger
    lost_ids = {o.job_id for o in outcomes if isinstance(o, AnswerLostError)}
    if ledger is not None:
        entries = [e for e in ledger.entries() if not e.cached]
        lost = math.fsum(e.usd for e in entries if e.job_id in lost_ids)
        return float(ledger.total_usd()), round(lost, 9), len(entries), "ledger"
    return round(math.fsum(r.cost.usd or 0.0 for r in results), 9), 0.0, 0, "sum of result.cost"


def run_soak(requests: int, *, concurrency: int = 20, seed: int = 1, rates: dict[str, float] | None = None,
             output_rates: dict[str, float] | None = None, store_faults: bool = True,
             timeouts: dict[str, float] | None = None) -> SoakReport:
    """Run the soak and reconcile the books; see the module docstring. ``timeouts`` replaces the
    providers' short HTTP timeouts (``TIMEOUTS``, made to be outlasted by the stall faults)."""
    rates = FAULT_RATES if rates is None else rates
    output_rates = OUTPUT_FAULT_RATES if output_rates is None else output_rates
    emulators = _emulators(rates, seed, output_rates, requests)
    with tempfile.TemporaryDirectory() as tmp, running(emulators) as servers:
        store, config = Path(tmp), soak_config(servers, Path(tmp), timeouts)
        locks = StoreLocks([store / "ledger.sqlite3", store / "jobs.sqlite3"])
        with Client(config) as client, locks.running(enabled=store_faults):
            batch = [ImageRequest.build(prompt=f"a lighthouse in fog, take {i}", provider=f"soak{i % len(ROUTES)}",
                                        timeout=60) for i in range(requests)]
            started = time.monotonic()
            outcomes = client.generate_many(batch, concurrency=concurrency)
            seconds = time.monotonic() - started
        planned = {name: emulator.faults for name, emulator in emulators.items()}
        for emulator in emulators.values():
            emulator.faults = FaultPlan()
        with Client(config) as client:  # a new start: replays the charges the locked ledger journalled
            fetched = fetch_unreturned(client, outcomes)
            results = [o for o in outcomes if isinstance(o, ImageResult)] + fetched
            client_usd, lost_usd, ledger_charges, source = _client_total(client, results, outcomes)
        report = reconcile(requests, seconds, outcomes, emulators, client_usd, source, lost_usd, later=fetched)
    report.fetched_later = len(fetched)
    report.output_faults = {name: dict(getattr(plan, "outputs", {})) for name, plan in planned.items()}
    report.store_locks = dict(locks.held)
    report.journalled = sum(1 for o in outcomes if isinstance(o, ImageResult)
                            and any("charge journal" in w for w in o.warnings))
    report.ledger_usd = client_usd
    report.ledger_charges = ledger_charges
    return report


def reconcile(requests: int, seconds: float, outcomes: list[Any], emulators: dict[str, Any],
              client_usd: float, cost_source: str, lost_in_transit_usd: float = 0.0,
              later: list[ImageResult] | None = None) -> SoakReport:
    """``later``: results of billed jobs fetched after the run (matched to charges like the others)."""
    returned = [o for o in outcomes if isinstance(o, ImageResult)]
    results = returned + list(later or [])
    errors = collections.Counter(_error_name(o) for o in outcomes if isinstance(o, ImageGenError))
    stray = [o for o in outcomes if not isinstance(o, (ImageResult, ImageGenError))]
    if stray:
        raise AssertionError(f"{len(stray)} outcomes are neither results nor ImageGenErrors: {stray[:3]!r}")
    result_refs = collections.Counter(r.job_id.partition(":")[2] for r in results if r.job_id)
    charges, matched, cut, lost, duplicates = {}, {}, {}, [], []
    usd_for_results = usd_total = usd_for_lost = 0.0
    answers_lost = collections.Counter(o.provider for o in outcomes if isinstance(o, AnswerLostError))
    for name, emulator in emulators.items():
        records = emulator.counters.charges
        refs = collections.Counter(c["ref"] for c in records)
        duplicates += [f"{name}:{ref} charged {n} times" for ref, n in refs.items() if n > 1]
        duplicates += [f"{name}:{ref} returned {n} times" for ref, n in result_refs.items()
                       if n > 1 and ref in refs]
        unmatched = [c for c in records if c["ref"] not in result_refs]
        charges[name] = len(records)
        matched[name] = len(records) - len(unmatched)
        usd_for_results += math.fsum(c["usd"] for c in records if c["ref"] in result_refs)
        mine = math.fsum(r.cost.usd or 0.0 for r in results if r.job_id and r.job_id.partition(":")[0] == name)
        theirs = math.fsum(c["usd"] for c in records if c["ref"] in result_refs)
        if not math.isclose(mine, theirs, abs_tol=1e-6):
            print(f"{name}: client {mine} vs emulator {theirs}", file=sys.stderr)
        usd_total += emulator.counters.total_usd
        # An answer lost after its 2xx: the vendor charged, the answer (with the id that names
        # the charge) never arrived whole, and the caller holds an AnswerLostError for it. Only
        # these are excused, one charge per error.
        cut[name] = answers_lost.get(name, 0)
        lost += [f"{name}:{c['ref']}" for c in unmatched[cut[name]:]]
        if len(unmatched) < cut[name]:
            lost += [f"{name}: {cut[name] - len(unmatched)} AnswerLostError(s) without a vendor charge"]
        usd_for_lost += math.fsum(c["usd"] for c in unmatched[:cut[name]])
    by_provider = collections.Counter(r.provider for r in returned)
    attempts = sum(len(r.attempts) for r in returned) + sum(
        len(getattr(o, "attempts", []) or []) for o in outcomes if isinstance(o, ImageGenError))
    return SoakReport(
        requests=requests, seconds=seconds, results=len(returned), errors=dict(errors),
        fault_counts={n: e.counters.faults for n, e in emulators.items()}, charges=charges, matched=matched,
        duplicate_charges=duplicates, answers_lost=cut, lost_results=lost, client_usd=client_usd,
        charged_usd_for_results=round(usd_for_results, 9), charged_usd_total=round(usd_total, 9),
        cost_source=cost_source, results_usd=round(math.fsum(r.cost.usd or 0.0 for r in results), 9),
        lost_in_transit_usd=lost_in_transit_usd, billed_for_lost_usd=round(usd_for_lost, 9),
        vendor_charges=sum(charges.values()),
        by_provider=dict(sorted(by_provider.items())), attempts=attempts)


def _error_name(error: ImageGenError) -> str:
    if isinstance(error, AllProvidersFailedError):
        last = error.attempts[-1].error_type if error.attempts else "?"
        return f"AllProvidersFailedError (last: {last})"
    return type(error).__name__


def table(report: SoakReport, baseline: SoakReport | None = None) -> str:
    lines = ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report.rows()]
    if baseline is not None:
        lines.append(f"| baseline (no faults) wall time | {baseline.seconds:.1f} s, {baseline.results} results |")
        lines.append(f"| wall time, faults / no faults | {report.seconds / baseline.seconds:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--write", action="store_true", help=f"also run the no-fault baseline; write {RESULTS}")
    args = parser.parse_args(argv)
    report = run_soak(args.requests, concurrency=args.concurrency, seed=args.seed)
    baseline = run_soak(args.requests, concurrency=args.concurrency, seed=args.seed, rates={}, output_rates={},
                        store_faults=False) if args.write else None
    text = table(report, baseline)
    print(text)
    if report.lost_results or report.duplicate_charges:
        print("lost:", report.lost_results[:10], "duplicates:", report.duplicate_charges[:10], file=sys.stderr)
    if args.write:
        command = "python -m benchmarks.soak " + " ".join(sys.argv[1:] if argv is None else argv)
        mix = ", ".join(f"{k} {v:.0%}" for k, v in FAULT_RATES.items())
        out_mix = ", ".join(f"{k} {v:.0%}" for k, v in OUTPUT_FAULT_RATES.items())
        RESULTS.write_text(
            "# Fault soak\n\n"
            f"{args.requests} requests at concurrency {args.concurrency} through three-provider routes taking "
            "turns (gemini -> nb2 -> wireflow and its two rotations; nb2 is nanobanana2 with async jobs), "
            f"every emulator on loopback injecting per call: {mix} (output downloads: {out_mix}; the ledger and "
            "the job store write-locked in turns, 2.5 s on, 1 s off) "
            f"(429s hint {RETRY_AFTER_S} s; timeouts stall {STALL_S} s past provider timeouts of "
            f"{', '.join(f'{k} {v} s' for k, v in TIMEOUTS.items())}). Baseline: the same run with no faults.\n\n"
            f"Command: `{command.strip()}`\n\n{text}\n{NOTES}")
    if report.lost_results or report.duplicate_charges or not report.totals_match:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
