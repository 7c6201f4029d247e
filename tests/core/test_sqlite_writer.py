"""The stores' writer thread: a write that fails leaves nothing behind, alone in its transaction
or among others; a ``later`` write waits for the others' commit; ``flush`` waits for it too."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from imagegen._sqlite import ThreadConnections, Writer

NEVER_S = 30


@pytest.fixture
def writer(tmp_path):
    connections = ThreadConnections(tmp_path / "w.sqlite3")
    connections.get().execute("CREATE TABLE t (v TEXT)")
    made = Writer(connections.get, name="test")
    yield made, connections
    made.close()


def _insert_then_fail(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES ('half')")
    raise ValueError("boom")


def _values(connections: ThreadConnections) -> list[str]:
    return sorted(v for (v,) in connections.get().execute("SELECT v FROM t"))


def test_a_failing_write_alone_leaves_nothing(writer):
    made, connections = writer
    with pytest.raises(ValueError, match="boom"):
        made.call(_insert_then_fail)
    assert _values(connections) == []


def test_a_failing_write_among_others_is_rolled_back_alone(writer):
    made, connections = writer
    hold, running = threading.Event(), threading.Event()
    blocker = made.submit(lambda conn: (running.set(), hold.wait(NEVER_S)))  # the next three queue behind it
    running.wait(NEVER_S)
    good = made.submit(lambda conn: conn.execute("INSERT INTO t VALUES ('a')"))
    bad = made.submit(_insert_then_fail)
    other = made.submit(lambda conn: conn.execute("INSERT INTO t VALUES ('b')"))
    hold.set()
    for future in (blocker, good, other):
        future.result(NEVER_S)
    with pytest.raises(ValueError):
        bad.result(NEVER_S)
    assert _values(connections) == ["a", "b"]


def test_a_later_write_waits_for_the_others_and_flush_waits_for_it(writer):
    made, connections = writer
    hold, busy, running = threading.Event(), threading.Event(), threading.Event()
    blocker = made.submit(lambda conn: (running.set(), busy.wait(NEVER_S)))  # the next two queue behind it
    running.wait(NEVER_S)  # (so they make one batch: the writer is not between two takes)
    later = made.submit(lambda conn: (hold.wait(NEVER_S), conn.execute("INSERT INTO t VALUES ('later')")),
                        later=True)
    now = made.submit(lambda conn: conn.execute("INSERT INTO t VALUES ('now')"))
    busy.set()
    blocker.result(NEVER_S)
    now.result(NEVER_S)  # committed while the later write is still held
    assert _values(connections) == ["now"] and not later.done()
    threading.Timer(0.1, hold.set).start()
    made.flush()
    assert later.done() and _values(connections) == ["later", "now"]
