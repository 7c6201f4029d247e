"""Long-lived objects kept out of the cyclic garbage collector's way.

Modules, classes and tables live as long as the process; a full collection walks every one of
them (a full pass after a warm Gemini call: ~115k objects, 35-390 ms on a loaded machine, on the
event loop: benchmarks/results/gc_pauses.md). ``gc.freeze()`` moves every object alive out of
the collector's reach, so a full pass walks only what the calls made since.

It runs twice per process: when the first provider is made (its plugin imported), and when a
call through a provider first finishes, since an SDK may be imported only then (google-genai
is: ~55k objects that a full pass in the middle of a batch would walk otherwise; a 200-call
batch at concurrency 20 has one). ``IMAGEGEN_GC_FREEZE=0`` leaves the collector alone.
"""

from __future__ import annotations

import gc
import os

__all__ = ["freeze_after_first_call", "freeze_startup_objects"]

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
