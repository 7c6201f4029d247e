"""The soak's faults beyond the vendor APIs: output downloads and the client's own stores.

- **Output downloads**: every emulator's ``/files/`` route (the CDN its output URLs point at)
  gets a seeded random plan of its own: 5xx answers, HTML error pages, truncated images and
  stalls. The vendor has billed these jobs already; the client must neither pay again nor
  lose them (a result it cannot fetch during the run is fetched afterwards by ``wait``).
- **Storage**: ``StoreLocks`` takes the ledger's and the job store's write lock from another
  connection, in turns, for longer than a client waits for it after a paid call: charges then
  go to the journal (replayed when the next client starts) and results carry a warning.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagegen import (
    AnswerLostError,
    Client,
    ImageGenError,
    ImageResult,
    JobTimeoutError,
    OutputUnavailableError,
)
from imagegen.testing import FaultPlan

__all__ = ["OUTPUT_FAULT_RATES", "CountedFaults", "StoreLocks", "fetch_unreturned", "output_faults"]

#: Per output download. 5xx and HTML pages are tried again by the client; a truncated image is
#: fetched again from a fresh poll; a stall runs into the download's time limit or recovers.
OUTPUT_FAULT_RATES = {"server_error": 0.04, "html": 0.02, "truncate": 0.03, "timeout": 0.01}


def output_faults(rates: dict[str, float], *, seed: int, stall_s: float) -> FaultPlan:
    if not rates:
        return FaultPlan()
    return FaultPlan.random(rates, seed=seed, path=r"^/files/", timeout_delay=stall_s)


class CountedFaults:
    """An emulator's fault plan that also counts the faults it picked for output downloads."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self.outputs: dict[str, int] = {}
        self._lock = threading.Lock()

    def pick(self, method: str, path: str) -> Any:
        fault = self.plan.pick(method, path)
        if fault is not None and path.startswith("/files/"):
            with self._lock:
                self.outputs[fault.kind] = self.outputs.get(fault.kind, 0) + 1
        return fault


class StoreLocks:
    """Holds the write lock of each SQLite store in turn: ``hold_s`` locked, ``gap_s`` free.

    The turns are short enough that a run of a few seconds still locks every store once.
    """

    def __init__(self, paths: list[Path], *, hold_s: float = 2.5, gap_s: float = 1.0) -> None:
        self.paths, self.hold_s, self.gap_s = paths, hold_s, gap_s
        self.held = {path.name: 0 for path in paths}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-store-locks", daemon=True)

    def _run(self) -> None:
        turn = 0
        while not self._stop.wait(self.gap_s):
            path = self.paths[turn % len(self.paths)]
            turn += 1
            if not path.exists():
                continue
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                self.held[path.name] += 1
                self._stop.wait(self.hold_s)
                conn.execute("ROLLBACK")
            finally:
                conn.close()

    @contextlib.contextmanager
    def running(self, enabled: bool = True) -> Iterator[StoreLocks]:
        if enabled:
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if enabled:
                self._thread.join(timeout=30)


def fetch_unreturned(client: Client, outcomes: list[Any]) -> list[ImageResult]:
    """Every billed job a caller was told of but did not get -- an ``OutputUnavailableError``'s or
    ``JobTimeoutError``'s job, an ``AllProvidersFailedError``'s pending jobs -- fetched now by
    ``wait(job_id)`` (faults over), as a user would: nothing may be paid again. An
    ``AnswerLostError`` names a charge with nothing to fetch (the answer was lost after billing)."""
    job_ids: list[str] = []
    for outcome in outcomes:
        if isinstance(outcome, (OutputUnavailableError, JobTimeoutError)) and not isinstance(outcome, AnswerLostError):
            job_ids += [outcome.job_id] if outcome.job_id else []
        job_ids += getattr(outcome, "pending_job_ids", None) or []
    fetched = []
    for job_id in dict.fromkeys(job_ids):
        try:
            fetched.append(client.wait(job_id, timeout=30))
        except ImageGenError:
            continue  # counted by the reconciliation: a charge without a result
    return fetched
