"""``Client``: the synchronous facade over ``AsyncClient``.

There is no second copy of the logic: each method runs the async one on a private
event loop in a daemon thread. That also makes ``Client`` usable from code that
already runs an event loop (notebooks, async frameworks calling sync helpers).

This module imports nothing of the client at module level, so ``from imagegen import
Client`` costs next to nothing; ``AsyncClient`` (and with it asyncio, httpx and pydantic's
model machinery) is imported by the first ``Client()``, or by the first look at one of
``Client``'s methods (``help(Client)``, ``inspect.signature``). That moves the cost, it does
not remove it: benchmarks/results/import_time.md measures the import and a first call.
Type checkers see the methods as ``AsyncClient``'s, wrapped (``_blocking``).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from ._cache import CacheBackend
    from ._client import AsyncClient
    from ._config import Config
    from ._jobstore import JobStore
    from ._ledger import Ledger, RedisLedger
    from ._plugins import PluginRegistry
    from ._provider import Provider
    from ._sessions import Session
    from .fleet import Fleet

__all__ = ["Client"]

T = TypeVar("T")
P = ParamSpec("P")


class _LoopThread:
    """An event loop running forever in a daemon thread; ``run`` blocks on one coroutine."""

    def __init__(self) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="imagegen-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


def _close_at_exit(client: Client) -> None:
    """Close ``client`` when the interpreter exits, if its owner never did.

    A client left open (``client = Client()`` in a script) still has background writes (cache
    entries, finished jobs) under way on its loop thread. They run in the default executor,
    which the interpreter shuts down at exit before ``atexit`` handlers run: the writes would be
    lost ("cannot schedule new futures after shutdown"). ``threading._register_atexit`` hooks
    run before that shutdown, last registered first; the hook holds only a weak reference, so
    an open client can still be garbage-collected.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - every supported CPython has it
        return
    # concurrent.futures.thread registers its shutdown when first imported (asyncio imports it
    # lazily, at the first to_thread): import it now so that it registers before us.
    import concurrent.futures.thread  # noqa: F401

    ref = weakref.ref(client)
    owner = os.getpid()

    def close() -> None:
        alive = ref()
        # A forked child has the Client but not its loop thread: closing it there would wait forever.
        if alive is not None and os.getpid() == owner:
            try:
                alive.close()
            except Exception as exc:  # at exit there is no caller left to raise to
                import logging

                logging.getLogger("imagegen").warning("imagegen: closing an open Client at exit failed: %s", exc)

    try:
        register(close)
    except RuntimeError:  # already shutting down: nothing can be scheduled any more
        pass


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()


def _blocking(method: Callable[[], Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]],
              ) -> Callable[Concatenate[Client, P], T]:
    """``AsyncClient.method`` as a blocking ``Client`` method, with the same typed signature.

    ``method`` returns the ``AsyncClient`` method (``lambda: AsyncClient.generate``): it is
    called when the client is loaded (``_load_client``), which wraps it with ``_run_blocking``.
    """
    return cast("Callable[Concatenate[Client, P], T]", _Deferred(_run_blocking, method))


def _blocking_iter(method: Callable[[], Callable[Concatenate[AsyncClient, P], AsyncGenerator[T, None]]],
                   ) -> Callable[Concatenate[Client, P], Iterator[T]]:
    """An ``AsyncClient`` async generator as a blocking ``Client`` iterator (loaded as ``_blocking``)."""
    return cast("Callable[Concatenate[Client, P], Iterator[T]]", _Deferred(_iterate_blocking, method))


def _run_blocking(method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
                  ) -> Callable[Concatenate[Client, P], T]:
    @functools.wraps(method)
    def blocking(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._loop.run(method(self._async, *args, **kwargs))

    return blocking


def _iterate_blocking(method: Callable[Concatenate[AsyncClient, P], AsyncGenerator[T, None]],
                      ) -> Callable[Concatenate[Client, P], Iterator[T]]:
    @functools.wraps(method)
    def blocking(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        agen = method(self._async, *args, **kwargs)
        try:
            while True:
                try:
                    yield self._loop.run(_next(agen))
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(agen.aclose())

    return blocking


class _Deferred:
    """A ``Client`` method before the client is loaded: the first look at any of them (or the
    first ``Client()``) loads it, which puts every real method in its deferred one's place."""

    def __init__(self, wrap: Callable[[Any], Any], method: Callable[[], Any]) -> None:
        self.wrap, self.method, self.name = wrap, method, ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        _load_client()
        return vars(Client)[self.name].__get__(obj, owner)


_loading = threading.Lock()
_loaded = threading.Event()


def _load_client() -> None:
    """Import ``AsyncClient`` (and so the whole client) and give ``Client`` its real methods."""
    if _loaded.is_set():
        return
    with _loading:
        if _loaded.is_set():
            return
        # Through the package's loader: no collector passes while it imports, and the classes
        # the client imports are published (they report ``imagegen`` as their module).
        from . import _load

        _load("AsyncClient")
        from ._client import AsyncClient as loaded

        globals()["AsyncClient"] = loaded  # the name the methods' ``lambda: AsyncClient.x`` read
        for name, value in list(vars(Client).items()):
            if isinstance(value, _Deferred):
                setattr(Client, name, value.wrap(value.method()))
        _loaded.set()


class Client:
    """Generate and edit images through configured providers (blocking calls).

    Takes the same arguments as ``AsyncClient``; every method has the same name,
    arguments and result, without ``await``. Type checkers see each method's real
    signature: the methods are ``AsyncClient``'s, wrapped by ``_blocking``.
    """

    def __init__(
        self,
        config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        *,
        registry: PluginRegistry | None = None,
        job_store: JobStore | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        _load_client()
        self._loop = _LoopThread()
        try:
            self._async = AsyncClient(config, registry=registry, job_store=job_store, transports=transports)
        except BaseException:
            self._loop.stop()
            raise
        _close_at_exit(self)

    generate = _blocking(lambda: AsyncClient.generate)
    generate_many = _blocking(lambda: AsyncClient.generate_many)
    edit = _blocking(lambda: AsyncClient.edit)
    stream = _blocking_iter(lambda: AsyncClient.stream)
    submit = _blocking(lambda: AsyncClient.submit)
    status = _blocking(lambda: AsyncClient.status)
    wait = _blocking(lambda: AsyncClient.wait)
    cancel = _blocking(lambda: AsyncClient.cancel)
    estimate = _blocking(lambda: AsyncClient.estimate)
    estimate_many = _blocking(lambda: AsyncClient.estimate_many)
    submit_batch = _blocking(lambda: AsyncClient.submit_batch)
    estimate_batch = _blocking(lambda: AsyncClient.estimate_batch)
    resubmit_batch = _blocking(lambda: AsyncClient.resubmit_batch)
    flush = _blocking(lambda: AsyncClient.flush)

    @property
    def config(self) -> Config:
        return self._async.config

    @property
    def jobs(self) -> JobStore:
        return self._async.jobs

    @property
    def cache(self) -> CacheBackend | None:
        return self._async.cache

    @property
    def ledger(self) -> Ledger | RedisLedger | None:
        return self._async.ledger

    def circuit_state(self, name: str) -> dict[str, object]:
        """The circuit breaker's view of a provider: state, failures, retry_in_s."""
        return self._async.circuit_state(name)

    def provider(self, name: str) -> Provider:
        """The provider instance configured as ``name`` (created on first use)."""
        return self._async.provider(name)

    def providers(self) -> dict[str, type[Provider]]:
        """Installed provider plugins by name."""
        return self._async.providers()

    def fleet(self, url: str | None = None) -> Fleet:
        """The blocking twin of ``AsyncClient.fleet`` (see ``imagegen.fleet``)."""
        from .fleet import AsyncFleet, Fleet

        return Fleet(AsyncFleet(self._async, url), self._loop.run)

    def session(self, provider: str | None = None, *, id: str | None = None) -> Session:
        """An edit session (see ``AsyncClient.session``); ``id`` resumes a stored one."""
        from ._sessions import Session

        return Session(self._async.session(provider, id=id), self._loop.run)

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        self._loop.run(self._async.aclose())
        self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
