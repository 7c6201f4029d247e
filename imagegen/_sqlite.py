"""SQLite for the job store, the ledger and the disk cache: per-thread readers, one writer.

WAL lets several processes read while one writes; ``synchronous=NORMAL`` makes a commit
survive the process dying (not a power cut) without an fsync per write; autocommit mode
(``isolation_level=None``) leaves transactions to explicit ``BEGIN``.

Reads use the calling thread's own connection (in WAL mode a reader never waits for a
writer). Writes go to the store's ``Writer``: one thread per store and process that runs
every write, many to a commit, so concurrent calls neither contend for SQLite's write lock
nor block the event loop, and a busy moment costs one commit rather than one per write.

A statement on a calling thread's connection (a read, an idempotency claim) waits for another
process's lock 30 s at most, or less inside ``waits_until``: a call never waits on a store past
its own deadline (the pipeline sets it).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import os
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import Any, NamedTuple, TypeVar

__all__ = ["ThreadConnections", "Writer", "wait_left", "waits_until"]

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
#: Writes per transaction at most: a commit stays short even when thousands are queued.
MAX_BATCH = 256


#: (deadline as a ``time.monotonic()`` value or None, longest wait in seconds, share of the time
#: left before the deadline) for the current task.
_WAIT: contextvars.ContextVar[tuple[float | None, float, float]] = contextvars.ContextVar(
    "imagegen_store_wait", default=(None, BUSY_TIMEOUT_S, 1.0))


@contextlib.contextmanager
def waits_until(deadline: float | None = None, *, cap: float = BUSY_TIMEOUT_S, share: float = 1.0) -> Iterator[None]:
    """Statements inside (on threads started inside too) wait for a lock until ``deadline`` at
    most, ``cap`` seconds at most, and ``share`` of the time left at most; nested blocks only
    ever shorten the wait. Writes made by a store's ``Writer`` thread are not affected: the
    caller bounds its wait for them instead."""
    outer_deadline, outer_cap, outer_share = _WAIT.get()
    if outer_deadline is not None and (deadline is None or outer_deadline < deadline):
        deadline = outer_deadline
    token = _WAIT.set((deadline, min(cap, outer_cap), min(share, outer_share)))
    try:
        yield
    finally:
        _WAIT.reset(token)


def wait_left() -> float | None:
    """Seconds the current task may still wait on a store, or None when nothing bounds it."""
    deadline, cap, share = _WAIT.get()
    if deadline is None:
        return None if cap >= BUSY_TIMEOUT_S else cap
    return max(0.0, min(cap, share * (deadline - time.monotonic())))


def _busy_ms() -> int:
    deadline, cap, share = _WAIT.get()
    wait = cap if deadline is None else min(cap, share * (deadline - time.monotonic()))
    return max(50, int(wait * 4) * 250)  # in quarter seconds: the pragma is set only when it changes


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    # Switching to WAL answers "database is locked" at once, without the busy timeout, while
    # another process is creating the same new file: try again for as long as a lock may last.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.01)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class ThreadConnections:
    """Hands each thread its own connection to one database file (sqlite3 objects are per thread)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
            self._local.busy_ms = int(BUSY_TIMEOUT_S * 1000)
        busy = _busy_ms()
        if busy != self._local.busy_ms:  # rarely: only inside a call whose deadline is near
            conn.execute(f"PRAGMA busy_timeout = {busy}")
            self._local.busy_ms = busy
        return conn


class _Write(concurrent.futures.Future):  # type: ignore[type-arg]
    """A write's outcome. It cannot be cancelled: once submitted, a write is made even if the
    caller stops waiting (a cancelled call's release of its budget reservation, say)."""

    def cancel(self) -> bool:
        return False


class _Item(NamedTuple):
    """A queued write: ``op(connection)``, its coalescing key, the future its caller holds (and
    that future's loop, for an asyncio one), and whether it waits for the others (``later``)."""

    op: Callable[[sqlite3.Connection], Any]
    key: Hashable | None
    future: Any
    loop: asyncio.AbstractEventLoop | None
    later: bool = False
    prepare: Callable[[], object] | None = None


_STOP = object()
_live: weakref.WeakSet[Writer] = weakref.WeakSet()


class Writer:
    """The one thread that writes a store's database for this process.

    ``submit(op)`` queues ``op(connection)``; the thread takes everything queued, runs each
    op in its own savepoint inside one ``BEGIN IMMEDIATE`` transaction (an op that raises is
    rolled back alone and its caller gets the exception), commits, and only then resolves
    the futures: a resolved write is committed. Ops queued under the same ``key`` coalesce:
    only the last one runs (a job stored twice before the writer got to it is written once).
    Writes queued ``later`` go in a second transaction, after the first one's callers are told.
    The thread starts on the first write and stops at ``close()``, or at interpreter exit
    after writing what is queued.
    """

    def __init__(self, connect_db: Callable[[], sqlite3.Connection], *, name: str) -> None:
        self._connect = connect_db
        self.name = name
        #: The running thread and its queue (each thread has its own: a stopping thread's
        #: queue is never shared with the next one).
        self._thread: threading.Thread | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        #: Writes queued on an event loop since its last hand-over to the thread (``asubmit``),
        #: the loop they were queued on, and the process that queued them.
        self._pending: list[_Item] = []
        self._pending_loop: asyncio.AbstractEventLoop | None = None
        self._pending_pid = self._pid
        _live.add(self)

    def submit(self, op: Callable[[sqlite3.Connection], T], *, key: Hashable | None = None, later: bool = False,
               prepare: Callable[[], object] | None = None) -> concurrent.futures.Future[T]:
        """Queue ``op``. A ``later`` write waits until the writes queued with it (or before it)
        are committed and their callers told, then goes in a transaction of its own: work that
        nobody waits on (a job's image files) never delays a write somebody does. ``prepare``
        runs on this thread before the transaction (a content hash: no lock held meanwhile)."""
        future: concurrent.futures.Future[T] = _Write()
        self._put(_Item(op, key, future, None, later, prepare))
        return future

    def asubmit(self, op: Callable[[sqlite3.Connection], T], *, key: Hashable | None = None,
                later: bool = False) -> asyncio.Future[T]:
        """``submit`` for the running event loop: an asyncio future, resolved on the loop with the
        rest of its commit's writes (one wake-up of the loop per commit, not one per write).
        Cancelling it (a caller that stops waiting) does not withdraw the write."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        item = _Item(op, key, future, loop, later)
        # Handed to the thread once per turn of the loop, with the other writes queued in the
        # same turn: one wake-up of the writer (which then takes the GIL from the loop) per
        # turn rather than per write. The write is queued now all the same (``close()``,
        # ``flush()`` and any later ``submit`` hand over what is pending first).
        with self._lock:
            if self._pending_pid != os.getpid():  # a forked child: its parent's writes are not its own
                self._pending, self._pending_loop, self._pending_pid = [], None, os.getpid()
            if self._pending_loop is not loop and self._pending:  # queued on a loop that never handed over
                self._hand_over()
            self._pending.append(item)
            if self._pending_loop is None:
                self._pending_loop = loop
                loop.call_soon(self._hand_over_pending)
        return future

    def _hand_over_pending(self) -> None:
        with self._lock:
            self._hand_over()

    def _hand_over(self) -> None:
        """Under the lock: what ``asubmit`` queued goes to the thread, in order."""
        pending, self._pending, self._pending_loop = self._pending, [], None
        if pending and self._pending_pid == os.getpid():
            self._put_locked(pending)

    def _put(self, item: _Item) -> None:
        with self._lock:
            self._hand_over()  # writes queued before this one go first
            self._put_locked([item])

    def _put_locked(self, items: list[_Item]) -> None:
        if self._thread is None or self._pid != os.getpid():  # not started, or a forked child
            self._start()
        self._queue.put(items)

    def call(self, op: Callable[[sqlite3.Connection], T], *, key: Hashable | None = None) -> T:
        """Write and wait for the commit (from a thread that is not the writer's)."""
        return self.submit(op, key=key).result()

    async def acall(self, op: Callable[[sqlite3.Connection], T], *, key: Hashable | None = None) -> T:
        """Write and await the commit without blocking the event loop. The write is queued before
        the first ``await``, so it is made even if the caller is cancelled while waiting."""
        return await self.asubmit(op, key=key)

    def flush(self) -> None:
        """Wait until every write submitted so far is committed (``later`` ones included)."""
        if self._thread is not None or self._pending:
            self.submit(lambda conn: None, later=True).result()

    def close(self) -> None:
        """Commit what is queued and stop the thread (a later write starts a new one)."""
        with self._lock:
            self._hand_over()
            thread, self._thread = self._thread, None
            if thread is None or self._pid != os.getpid():
                return
            self._queue.put([_STOP])
        thread.join()

    def _start(self) -> None:
        self._pid, self._queue = os.getpid(), queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(self._queue,), name=f"imagegen-{self.name}-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self, source: queue.SimpleQueue[Any]) -> None:
        conn = self._connect()
        while True:
            batch = source.get()  # each entry a list of writes, handed over together
            while len(batch) < MAX_BATCH:
                try:
                    batch += source.get_nowait()
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            batch = [item for item in batch if item is not _STOP]
            for start in range(0, len(batch), MAX_BATCH):
                self._write_all(batch[start:start + MAX_BATCH], conn)
            if stop:
                self._write_all(_drain(source), conn)
                return

    def _write_all(self, batch: list[_Item], conn: sqlite3.Connection) -> None:
        self._write([item for item in batch if not item.later], conn)
        self._write([item for item in batch if item.later], conn)

    def _write(self, batch: list[_Item], conn: sqlite3.Connection) -> None:
        if not batch:
            return
        last = {item.key: i for i, item in enumerate(batch) if item.key is not None}
        # A later write of the same thing wins: the earlier one is skipped (resolved with None).
        skipped = {i for i, item in enumerate(batch) if item.key is not None and last[item.key] != i}
        outcomes: list[tuple[BaseException | None, Any]] = [(None, None)] * len(batch)
        for i, item in enumerate(batch):
            if item.prepare is not None and i not in skipped:
                try:
                    item.prepare()
                except Exception as exc:
                    outcomes[i] = (exc, None)
                    skipped.add(i)
        runnable = [i for i in range(len(batch)) if i not in skipped]
        # A write alone in its transaction needs no savepoint: if it fails, the transaction is rolled back.
        alone = len(runnable) == 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for i in runnable:
                    outcomes[i] = _run_op(conn, batch[i].op, savepoint=not alone)
                conn.execute("ROLLBACK" if alone and outcomes[runnable[0]][0] is not None else "COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except Exception as exc:  # the transaction could not be made: every write in it failed
            outcomes = [(exc, None)] * len(batch)
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], BaseException | None, Any]]] = {}
        for (_, _, future, loop, _, _), (error, value) in zip(batch, outcomes, strict=True):
            if loop is not None:
                on_loops.setdefault(loop, []).append((future, error, value))
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
        for loop, resolved in on_loops.items():
            try:
                loop.call_soon_threadsafe(_resolve, resolved)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass


def _resolve(resolved: list[tuple[asyncio.Future[Any], BaseException | None, Any]]) -> None:
    """On the loop: the futures of one commit's writes (a cancelled one was given up on)."""
    for future, error, value in resolved:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _run_op(conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], Any], *,
            savepoint: bool) -> tuple[BaseException | None, Any]:
    if savepoint:
        conn.execute("SAVEPOINT write")
    try:
        value = op(conn)
    except Exception as exc:
        if savepoint:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
        return exc, None
    if savepoint:
        conn.execute("RELEASE write")
    return None, value


def _drain(source: queue.SimpleQueue[Any]) -> list[Any]:
    items: list[Any] = []
    while True:
        try:
            items += source.get_nowait()
        except queue.Empty:
            return [i for i in items if i is not _STOP]


@atexit.register
def _close_all() -> None:
    """At exit (a normal one, or an uncaught exception), writes still queued are committed."""
    for writer in list(_live):
        writer.close()
