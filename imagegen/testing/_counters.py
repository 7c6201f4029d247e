"""Counters: what an emulator saw and charged, for assertions in tests and benchmarks."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["Counters"]


class Counters:
    """Thread-safe tallies kept by an emulator.

    - `calls`: requests per route, keyed ``"<METHOD> <route template>"`` (for example
      ``"POST /v1beta/models/{model}:generateContent"``) plus ``"total"``; the kit counts
      every request except its own ``/_emulator/*`` control routes;
    - `faults`: injected faults per kind;
    - `charges`: every `charge` an emulator recorded, with `total_usd` and `total_credits`;
    - free-form counters through `incr` and `get`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._named: dict[str, int] = {}
        self._calls: dict[str, int] = {}
        self._faults: dict[str, int] = {}
        self._charges: list[dict[str, Any]] = []

    def incr(self, name: str, n: int = 1) -> None:
        """Add `n` to the free-form counter `name`."""
        with self._lock:
            self._named[name] = self._named.get(name, 0) + n

    def get(self, name: str) -> int:
        """The value of the free-form counter `name` (0 if never incremented)."""
        with self._lock:
            return self._named.get(name, 0)

    def charge(self, *, usd: float = 0.0, credits: float = 0.0, ref: str | None = None) -> None:
        """Record that the emulated service billed a request; `ref` names it (e.g. a job id)."""
        with self._lock:
            self._charges.append({"usd": usd, "credits": credits, "ref": ref})

    @property
    def calls(self) -> dict[str, int]:
        """A copy of the per-route request counts, including ``"total"``."""
        with self._lock:
            return dict(self._calls)

    @property
    def faults(self) -> dict[str, int]:
        """A copy of the injected-fault counts per kind."""
        with self._lock:
            return dict(self._faults)

    @property
    def charges(self) -> list[dict[str, Any]]:
        """A copy of the charge records, oldest first: ``{"usd", "credits", "ref"}``."""
        with self._lock:
            return [dict(record) for record in self._charges]

    @property
    def total_usd(self) -> float:
        """The sum of all charges in US dollars, rounded to 1e-9 so 0.1 + 0.2 == 0.3."""
        with self._lock:
            return _total(record["usd"] for record in self._charges)

    @property
    def total_credits(self) -> float:
        """The sum of all charges in the vendor's credits."""
        with self._lock:
            return _total(record["credits"] for record in self._charges)

    def snapshot(self) -> dict[str, Any]:
        """Everything above as one JSON-serializable dict, taken atomically."""
        with self._lock:
            charges = [dict(record) for record in self._charges]
            return {
                "calls": dict(self._calls),
                "faults": dict(self._faults),
                "counters": dict(self._named),
                "charges": charges,
                "total_usd": _total(record["usd"] for record in charges),
                "total_credits": _total(record["credits"] for record in charges),
            }

    def reset(self) -> None:
        """Forget all calls, faults, charges and free-form counters."""
        with self._lock:
            self._named.clear()
            self._calls.clear()
            self._faults.clear()
            self._charges.clear()

    def __repr__(self) -> str:
        return f"Counters(calls={self.calls!r}, total_usd={self.total_usd!r})"

    # Called by the kit's middleware (same package), not meant for emulators.
    def _record_call(self, route: str) -> None:
        with self._lock:
            self._calls[route] = self._calls.get(route, 0) + 1
            self._calls["total"] = self._calls.get("total", 0) + 1

    def _record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] = self._faults.get(kind, 0) + 1



def _total(amounts: Iterable[float]) -> float:
    # Prices are far coarser than a nano-unit; rounding lets tests compare totals with ==.
    return round(math.fsum(amounts), 9)
