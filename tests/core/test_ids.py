"""The ids the core makes per call (``imagegen._ids``): unique in a process and across a fork."""

from __future__ import annotations

import multiprocessing
import re

from imagegen._ids import new_id


def _child_ids(queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put([new_id() for _ in range(3)])


def test_ids_are_32_hex_digits_and_never_repeat():
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_ids():
    # A child starts with its parent's memory: without a fresh prefix it would hand out the
    # parent's next ids again (two ledger entries, two calls, under one id).
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_ids, args=(queue,))
    child.start()
    theirs = queue.get(timeout=30)
    child.join(30)
    ours = [new_id() for _ in range(3)]
    assert not {i[:16] for i in theirs} & {i[:16] for i in ours}
    assert not set(theirs) & set(ours)
