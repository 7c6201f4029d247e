"""Storage faults: the one place where sqlite3, redis and OS errors from the stores become ``StorageError``.

The job store and the ledger are wrapped in ``GuardedStore`` when a client is built, so no
raw ``sqlite3.OperationalError``, ``redis.ConnectionError`` or ``OSError`` reaches a caller:
every one of their methods raises ``StorageError`` (naming the store and the fault) instead.
Whether that error reaches the caller is the pipeline's decision: before anything is paid
for it does; after a paid call the result is returned with a warning and the charge goes to
the journal (``imagegen._journal``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import sqlite3
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

from ._errors import ImageGenError, StorageError

__all__ = ["CacheGuard", "GuardedStore", "cache_faults", "describe_fault", "guarded", "is_storage_fault",
           "storage_faults", "translated"]

log = logging.getLogger("imagegen")
T = TypeVar("T")

#: Seconds a Redis command (or connecting) may take before the store counts as down: a Redis that
#: stops answering is a storage fault like any other, not a call that hangs.
REDIS_TIMEOUT_S = 10.0
S = TypeVar("S")

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
        object.__setattr__(self, "_wrapped", {})  # method name -> its wrapper, made once

    @property
    def inner(self) -> Any:
        """The store itself (tests and maintenance tools)."""
        return self._store

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        value = getattr(self._store, name)
        if not callable(value) or name.startswith("__"):
            return value
        wrapped = self._wrapped[name] = self._wrap(name, value)
        return wrapped

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store, name, value)

    def _wrap(self, name: str, method: Callable[..., T]) -> Callable[..., T]:
        what, reads = self._what, name in self._READS

        action = name.removeprefix("a") if inspect.iscoroutinefunction(method) else name

        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> T:
            with translated(what, action.replace("_", " ")):
                try:
                    value = method(*args, **kwargs)
                except ValueError as exc:
                    if not reads or isinstance(exc, ImageGenError):
                        raise
                    raise OSError(f"a stored record cannot be read back: {exc}") from exc
            # An awaiting twin (aput, areserve, ...): its faults come later. A queued write's
            # future (asubmit_*, like submit_*'s) is handed over as it is: the charge lifecycle
            # reports its fault, and wrapping it would cost a task per write.
            if inspect.isawaitable(value) and not isinstance(value, asyncio.Future):
                return _translating(value, what, action)  # type: ignore[return-value]
            return value
        return call

    def __repr__(self) -> str:
        return f"<guarded {self._what} {self._store!r}>"


async def _translating(value: Any, what: str, action: str) -> Any:
    with translated(what, action.replace("_", " ")):
        return await value


def guarded(store: S, what: str) -> S:
    """``store`` wrapped in ``GuardedStore`` (once: a guarded store is returned as is). Typed as the
    store itself: the wrapper has the same methods."""
    if store is None or isinstance(store, GuardedStore):
        return store
    return cast(S, GuardedStore(store, what))


def cache_faults() -> tuple[type[BaseException], ...]:
    """What a broken cache raises: storage faults, and the data faults of a corrupt index or entry."""
    return (*storage_faults(), ValueError, KeyError, TypeError)


class CacheGuard:
    """The result cache, made harmless: any fault of it is a miss, never a failed call.

    ``lookup`` answers ``(hit or None, fault or None)``; the pipeline adds the fault to the
    call's warnings. Writes that fail are logged (once per kind of fault: a broken cache would
    otherwise log every call). A cache that cannot even be opened is ``CacheGuard(None, broken=...)``:
    every lookup is a miss with that warning. The maintenance methods (``stats``, ``clear``,
    ``prune``) raise ``StorageError`` instead, for the CLI to report.
    """

    def __init__(self, backend: Any, *, broken: str | None = None) -> None:
        self.backend = backend
        self.broken = broken
        self.blocking_get = getattr(backend, "blocking_get", True)
        self._logged: set[str] = set()

    def __getattr__(self, name: str) -> Any:  # blobs, root, ttl_s, ...: the backend's
        if self.backend is None:
            raise AttributeError(name)
        return getattr(self.backend, name)

    def lookup(self, key: str) -> tuple[Any, str | None]:
        if self.backend is None:
            return None, self.broken
        try:
            return self.backend.get(key), None
        except ImageGenError:
            raise
        except cache_faults() as exc:
            return None, self._fault("read", exc)

    def get(self, key: str) -> Any:
        return self.lookup(key)[0]

    def put(self, key: str, result: Any) -> None:
        if self.backend is None:
            return
        try:
            self.backend.put(key, result)
        except ImageGenError:
            raise
        except cache_faults() as exc:
            self._fault("written", exc)

    async def aput(self, key: str, result: Any) -> None:
        """``put`` without blocking the event loop (the backend's own ``aput`` when it has one)."""
        if self.backend is None:
            return
        aput = getattr(self.backend, "aput", None)
        try:
            if aput is not None:
                await aput(key, result)
            else:
                await asyncio.to_thread(self.backend.put, key, result)
        except ImageGenError:
            raise
        except cache_faults() as exc:
            self._fault("written", exc)

    def _fault(self, action: str, exc: BaseException) -> str:
        message = (f"the cache could not be {action} ({describe_fault(exc)}); this call was served without it. "
                   + _HINTS["cache"])
        kind = f"{action}:{type(exc).__name__}"
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning("imagegen: %s", message)
        return message

    def _maintenance(self, name: str) -> Any:
        if self.backend is None:
            raise StorageError(self.broken or "the cache cannot be opened", store="cache")
        method = getattr(self.backend, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with translated("cache", name):
                try:
                    return method(*args, **kwargs)
                except (ValueError, KeyError, TypeError) as exc:
                    raise OSError(f"the cache holds unreadable data: {exc}") from exc
        return call

    @property
    def stats(self) -> Any:
        return self._maintenance("stats")

    @property
    def clear(self) -> Any:
        return self._maintenance("clear")

    @property
    def prune(self) -> Any:
        return self._maintenance("prune")
