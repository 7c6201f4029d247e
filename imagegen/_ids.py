"""Ids the core makes on every call (an idempotency key, a ledger entry), without a system call.

``uuid.uuid4()`` reads 16 bytes from ``os.urandom``: a system call that gives up the GIL, and
with the stores' writer threads busy the event loop waits to get it back (under load, up to a
switch interval) -- twice per call, more than the rest of the id-making put together. An id
here is the same shape as ``uuid4().hex`` (32 hex digits): 64 random bits drawn once per process
(again in a forked child, which must not repeat its parent's ids) and a 64-bit counter. Two
processes share a prefix with odds of 2**-64 a pair; within a process ids never repeat.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["new_id"]

_prefix = ""
_counter = itertools.count()


def _draw_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(8).hex(), itertools.count()


def new_id() -> str:
    """An id of 32 hex digits, never repeated in this process, random across processes."""
    return f"{_prefix}{next(_counter):016x}"


_draw_prefix()
os.register_at_fork(after_in_child=_draw_prefix)
