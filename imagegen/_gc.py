"""Long-lived objects kept out of the cyclic garbage collector's way.

Modules, classes and tables live as long as the process; a full collection walks every one of
them (a full pass after a warm Gemini call: ~115k objects, 35-390 ms on a loaded machine, on the
event loop: benchmarks/results/gc_pauses.md). ``gc.freeze()`` moves every object alive out of
the collector's reach, so a full pass walks only what the calls made since.

It runs twice per process: when the first provider is made (its plugin imported), and when a
call through a provider first finishes, since an SDK may be imported only then (google-genai
is: ~55k objects that a full pass in the middle of a batch would walk otherwise; a 200-call
batch at concurrency 20 has one). ``IMAGEGEN_GC_FREEZE=0`` leaves the collector alone.

At that second point the youngest generation's threshold goes from the interpreter's 700 to
``YOUNG_THRESHOLD`` (only if nobody changed it): calls in flight keep their objects alive past
a young collection, which then promotes them and, in turn, triggers full passes over
everything promoted since the freeze. At 500 calls in flight the collector's passes found
nothing to free and took ~0.5 ms of imagegen's ~1.2 ms CPU per call (a 5,000-call batch: young
0.3 s, middle 0.65 s and 11 full passes of ~130 ms); with 10,000, 0.2-0.25 ms and no full pass
(``benchmarks/concurrency.py``). Cyclic garbage is still collected, 10,000 allocations later.
"""

from __future__ import annotations

import gc
import os

__all__ = ["YOUNG_THRESHOLD", "freeze_after_first_call", "freeze_startup_objects"]

#: Allocations between young collections once a call has run (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
_DEFAULT_THRESHOLD0 = 700

_started = False
_warm = False


def _enabled() -> bool:
    return os.environ.get("IMAGEGEN_GC_FREEZE", "1") != "0"


def freeze_startup_objects() -> None:
    """Once per process: when its first provider exists."""
    global _started
    if not _started and _enabled():
        gc.freeze()
    _started = True


def freeze_after_first_call() -> None:
    """Once per process: when a call through a provider has finished (its SDK loaded)."""
    global _warm
    if not _warm:
        _warm = True
        if _enabled():
            gc.freeze()
            young, *older = gc.get_threshold()
            if young == _DEFAULT_THRESHOLD0:  # a threshold someone chose is theirs
                gc.set_threshold(YOUNG_THRESHOLD, *older)
