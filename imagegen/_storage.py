"""Storage faults: the one place where sqlite3, redis and OS errors from the stores become ``StorageError``.

The job store and the ledger are wrapped in ``GuardedStore`` when a client is built, so no
raw ``sqlite3.OperationalError``, ``redis.ConnectionError`` or ``OSError`` reaches a caller:
every one of their methods raises ``StorageError`` (naming the store and the fault) instead.
Whether that error reaches the caller is the pipeline's decision: before anything is paid
for it does; after a paid call the result is returned with a warning and the charge goes to
the journal (``imagegen._journal``).
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from ._errors import ImageGenError, StorageError

__all__ = ["GuardedStore", "describe_fault", "guarded", "is_storage_fault", "storage_faults", "translated"]

T = TypeVar("T")

#: What each store is for, in the words a message uses.
_HINTS = {
    "job store": "check jobs.path / jobs.url in the config, free disk space, or stop the process holding it",
    "ledger": "check ledger.path / ledger.url in the config, free disk space, or stop the process holding it",
    "cache": "the cache is skipped meanwhile; `imagegen cache clear` or deleting the cache directory rebuilds it",
}


def storage_faults() -> tuple[type[BaseException], ...]:
    """The exception classes that mean a store failed (redis's only once redis is imported)."""
    faults: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    redis = sys.modules.get("redis.exceptions")
    if redis is not None:
        faults += (redis.RedisError,)
    return faults


def is_storage_fault(exc: BaseException) -> bool:
    return isinstance(exc, storage_faults()) and not isinstance(exc, ImageGenError)


def describe_fault(exc: BaseException) -> str:
    """``"OperationalError: database is locked"``: the class and the message, no traceback."""
    if isinstance(exc, StorageError):
        return exc.message
    text = getattr(exc, "strerror", None) or str(exc) or "no details"
    where = getattr(exc, "filename", None)
    return f"{type(exc).__name__}: {text}" + (f" ({where})" if where else "")


@contextlib.contextmanager
def translated(store: str, action: str) -> Iterator[None]:
    """Turn a storage fault raised inside into ``StorageError``; everything else passes untouched."""
    try:
        yield
    except ImageGenError:
        raise
    except Exception as exc:
        if not is_storage_fault(exc):
            raise
        hint = _HINTS.get(store, "check its configuration and free disk space")
        raise StorageError(f"the {store} could not {action} ({describe_fault(exc)}); {hint}",
                           store=store) from exc


class GuardedStore:
    """A store whose every method raises ``StorageError`` for a storage fault; attributes pass through.

    Reads of records that no longer parse (a corrupt row, a missing image file) are storage
    faults too: ``ValueError`` from ``get``/``find``/``recent`` is translated as well.
    """

    _READS = frozenset({"get", "find", "recent", "entries", "summary", "total_usd", "spent_usd"})

    def __init__(self, store: Any, what: str) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_what", what)

    @property
    def inner(self) -> Any:
        """The store itself (tests and maintenance tools)."""
        return self._store

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._store, name)
        if not callable(value) or name.startswith("__"):
            return value
        return self._wrap(name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store, name, value)

    def _wrap(self, name: str, method: Callable[..., T]) -> Callable[..., T]:
        what, reads = self._what, name in self._READS

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> T:
            with translated(what, name.replace("_", " ")):
                try:
                    return method(*args, **kwargs)
                except ValueError as exc:
                    if not reads or isinstance(exc, ImageGenError):
                        raise
                    raise OSError(f"a stored record cannot be read back: {exc}") from exc
        return call

    def __repr__(self) -> str:
        return f"<guarded {self._what} {self._store!r}>"


def guarded(store: Any, what: str) -> Any:
    """``store`` wrapped in ``GuardedStore`` (once: a guarded store is returned as is)."""
    if store is None or isinstance(store, GuardedStore):
        return store
    return GuardedStore(store, what)
