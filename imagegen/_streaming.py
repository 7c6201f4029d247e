"""Streamed partial images: how a provider hands previews to ``AsyncClient.stream``.

``stream()`` runs an ordinary call (route, cache, retries, budget, job store, ledger) with a
*partial sink* in its context; a provider that can stream (OpenAI's ``partial_images``) reads
it with ``partial_sink()`` and delivers each preview as it arrives. Providers that cannot
stream ignore it, so the caller then gets the final result alone. Keeping the sink out of
``ImageRequest`` means a streamed request has the same cache key, job record and price book
entry as the same request not streamed.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from ._errors import InvalidRequestError
from ._models import Image, ImageResult

__all__ = ["PartialImage", "PartialSink", "partial_sink", "stream_results"]


class PartialImage(BaseModel):
    """One preview of an image still being generated; ``index`` counts from 0."""

    model_config = ConfigDict(defer_build=True)

    index: int
    image: Image
    provider: str
    model: str


@dataclass(frozen=True)
class PartialSink:
    """What ``stream()`` asked for: how many previews (1-3), and where they go."""

    partials: int
    deliver: Callable[[PartialImage], None]


_SINK: contextvars.ContextVar[PartialSink | None] = contextvars.ContextVar("imagegen_partial_sink", default=None)


def partial_sink() -> PartialSink | None:
    """The sink of the ``stream()`` call running in this context, or None (not streaming)."""
    return _SINK.get()


def set_partial_sink(sink: PartialSink | None) -> contextvars.Token[PartialSink | None]:
    return _SINK.set(sink)


def reset_partial_sink(token: contextvars.Token[PartialSink | None]) -> None:
    _SINK.reset(token)


async def stream_results(run: Callable[[], Awaitable[ImageResult]], partials: int,
                         background: Callable[[asyncio.Task[ImageResult]], object],
                         ) -> AsyncGenerator[PartialImage | ImageResult, None]:
    """Run ``run()`` (one ordinary call) with a partial sink; yield previews as they come, then the result.

    If the consumer stops early, the call is not cancelled (it may already be billed): it
    finishes in the background (``background`` keeps it), and its result still reaches the
    cache, the job store and the ledger.
    """
    if not 1 <= partials <= 3:
        raise InvalidRequestError(f"partial_images must be 1, 2 or 3, not {partials}")
    queue: asyncio.Queue[PartialImage] = asyncio.Queue()

    async def call() -> ImageResult:
        token = set_partial_sink(PartialSink(partials=partials, deliver=queue.put_nowait))
        try:
            return await run()
        finally:
            reset_partial_sink(token)

    task = asyncio.ensure_future(call())
    finished = False
    try:
        while not task.done() or not queue.empty():
            if queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    continue
                yield getter.result()
            else:
                yield queue.get_nowait()
        finished = True
        yield task.result()
    finally:
        if not finished and not task.done():
            background(task)
