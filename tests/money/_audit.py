"""The money audit's bookkeeping: run an entry point, then reconcile every book.

After a case, these must hold whatever the fault was:

- what the vendors billed (their emulators' counters) == the ledger's total (with the charge
  journal replayed) == what the budgets count;
- no job was billed twice;
- every billed job's images were returned, or ``wait(job_id)`` returns them now without paying;
- every failure was a typed ``ImageGenError``, raised within the call's deadline plus a margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagegen import AsyncClient, ImageGenError, ImageRequest, ImageResult

#: The call's deadline in the audit, and the margin a failure may take beyond it. Both leave room
#: for a loaded 2-core CI machine (at 1.5 s each, a healthy call or a failure's clean-up overran
#: them now and then at load 6-10); a stalled answer still ends within seconds, not the 30-60 s a
#: lock or read timeout would take.
DEADLINE_S = 3.0
MARGIN_S = 3.0
ENTRY_POINTS = ("generate", "submit_wait", "batch")


@dataclass
class Outcome:
    results: list[ImageResult] = field(default_factory=list)
    errors: list[ImageGenError] = field(default_factory=list)
    slowest_failure_s: float = 0.0
    #: Per call that succeeded: its warnings (a submitted job's, and its result's).
    warnings: list[list[str]] = field(default_factory=list)


async def run_entry(client: AsyncClient, entry: str, provider: str, *, prompts: int = 2,
                    timeout: float = DEADLINE_S) -> Outcome:
    """Spend money through one entry point; typed errors are collected, anything else propagates."""
    outcome = Outcome()
    if entry == "batch":  # what `imagegen batch` runs: keyed requests through generate_many
        from imagegen.cli._resume import keyed_items

        items = keyed_items([f"a lighthouse, take {i}" for i in range(prompts)],
                            {"provider": provider, "timeout": timeout})
        started = time.monotonic()
        for item in await client.generate_many([i.request for i in items], concurrency=prompts):
            _collect(outcome, item, started)
        return outcome

    async def one(i: int) -> None:
        started = time.monotonic()
        try:
            said: list[str] = []
            if entry == "generate":
                result = await client.generate(f"a fox, take {i}", provider=provider, timeout=timeout)
            else:
                job = await client.submit(ImageRequest(prompt=f"a fox, take {i}", provider=provider, timeout=timeout))
                said += job.metadata.get("warnings", [])
                # A synchronous API's job comes back finished: its images are returned right there.
                result = job.result or await client.wait(job.id, timeout=timeout)
            outcome.results.append(result)
            outcome.warnings.append([*said, *result.warnings])
        except ImageGenError as exc:
            _collect(outcome, exc, started)

    await asyncio.gather(*(one(i) for i in range(prompts)))
    return outcome


def _collect(outcome: Outcome, item: ImageResult | ImageGenError, started: float) -> None:
    if isinstance(item, ImageResult):
        outcome.results.append(item)
        outcome.warnings.append(list(item.warnings))
    else:
        outcome.errors.append(item)
        outcome.slowest_failure_s = max(outcome.slowest_failure_s, time.monotonic() - started)


async def reconcile(client: AsyncClient, outcome: Outcome, emulators: dict[str, Any]) -> dict[str, Any]:
    """Check the books (see the module docstring); returns what was found, for messages."""
    assert outcome.slowest_failure_s <= DEADLINE_S * 2 + MARGIN_S, outcome.slowest_failure_s  # submit + wait
    for error in outcome.errors:
        assert isinstance(error, ImageGenError) and error.message
    returned = {r.job_id for r in outcome.results}
    billed = round(sum(e.counters.total_usd for e in emulators.values()), 9)
    fetched_later = []
    for name, emulator in emulators.items():
        refs = [c["ref"] for c in emulator.counters.charges if c["usd"] > 0]
        assert len(refs) == len(set(refs)), f"{name} billed a job twice: {refs}"
        for ref in refs:
            job_id = f"{name}:{ref}"
            if job_id in returned or _refunded(emulator, ref):
                continue
            later = await client.wait(job_id, timeout=10)  # the paid image is still there, for free
            assert later.images and later.images[0].width > 0
            fetched_later.append(job_id)
    after = round(sum(e.counters.total_usd for e in emulators.values()), 9)
    assert after == billed, "fetching paid images again must not pay again"
    return {"billed": billed, "fetched_later": fetched_later}


def _refunded(emulator: Any, ref: str) -> bool:
    return round(sum(c["usd"] for c in emulator.counters.charges if c["ref"] == ref), 9) == 0


def ledger_books(client: AsyncClient) -> tuple[float, float]:
    """(ledger total, what the budgets count), after any journal was replayed."""
    ledger = client.ledger
    assert ledger is not None
    return ledger.total_usd(), ledger.spent_usd()


@contextlib.contextmanager
def write_locked(path: str | Path) -> Iterator[None]:
    """Another process's long write transaction on a SQLite file (the file must exist)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
