"""``Client``: the synchronous facade over ``AsyncClient``.

There is no second copy of the logic: each method runs the async one on a private
event loop in a daemon thread. That also makes ``Client`` usable from code that
already runs an event loop (notebooks, async frameworks calling sync helpers).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ._client import AsyncClient

__all__ = ["Client"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread; ``run`` blocks on one coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="imagegen-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
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


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()


def _blocking(name: str) -> Callable[..., Any]:
    async_method = getattr(AsyncClient, name)

    @functools.wraps(async_method)
    def method(self: Client, *args: Any, **kwargs: Any) -> Any:
        return self._loop.run(getattr(self._async, name)(*args, **kwargs))

    return method


class Client:
    """Generate and edit images through configured providers (blocking calls).

    Takes the same arguments as ``AsyncClient``; every method has the same name,
    arguments and result, without ``await``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _LoopThread()
        try:
            self._async = AsyncClient(*args, **kwargs)
        except BaseException:
            self._loop.stop()
            raise

    generate = _blocking("generate")
    generate_many = _blocking("generate_many")
    edit = _blocking("edit")
    submit = _blocking("submit")
    status = _blocking("status")
    wait = _blocking("wait")
    cancel = _blocking("cancel")
    estimate = _blocking("estimate")
    estimate_many = _blocking("estimate_many")
    flush = _blocking("flush")

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """``AsyncClient.stream`` as a blocking iterator: previews (``PartialImage``), then the ``ImageResult``."""
        agen = self._async.stream(*args, **kwargs)
        try:
            while True:
                try:
                    yield self._loop.run(_next(agen))
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(agen.aclose())

    @property
    def config(self) -> Any:
        return self._async.config

    @property
    def jobs(self) -> Any:
        return self._async.jobs

    @property
    def cache(self) -> Any:
        return self._async.cache

    @property
    def ledger(self) -> Any:
        return self._async.ledger

    def circuit_state(self, name: str) -> dict[str, object]:
        return self._async.circuit_state(name)

    def provider(self, name: str) -> Any:
        return self._async.provider(name)

    def providers(self) -> Any:
        return self._async.providers()

    def close(self) -> None:
        if self._loop.loop.is_closed():
            return
        self._loop.run(self._async.aclose())
        self._loop.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
