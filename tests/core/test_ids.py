"""The ids the core makes per call (``imagegen._ids``): unique in a process and across a fork."""

from __future__ import annotations

import os
import re

from imagegen._ids import new_id


def test_ids_are_32_hex_digits_and_never_repeat():
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_forked_child_does_not_repeat_its_parents_ids():
    # A child starts with its parent's memory: without a fresh prefix it would hand out the
    # parent's next ids again (two ledger entries, two calls, under one id).
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then gone at once (none of the parent's exit handlers)
        try:
            os.write(write, " ".join(new_id() for _ in range(3)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = pipe.read().split()
    os.waitpid(pid, 0)
    ours = [new_id() for _ in range(3)]
    assert len(theirs) == 3
    assert not {i[:16] for i in theirs} & {i[:16] for i in ours}
    assert not set(theirs) & set(ours)
