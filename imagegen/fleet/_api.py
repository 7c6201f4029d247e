"""``client.fleet(url)``: submit a batch to the fleet, watch and steer it, or be a worker."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any, TypeVar, cast

from .._batch_keys import batch_keys
from .._config import Config, FleetConfig
from .._errors import ConfigurationError, InvalidRequestError
from .._models import ImageRequest
from ._limits import FleetLimiter
from ._queue import BatchQueue, new_batch_id
from ._status import BatchStatus, read_status
from ._storage import is_url, read_results
from ._worker import Worker, assemble_results

__all__ = ["AsyncFleet", "Fleet", "item_keys", "worker_config"]

T = TypeVar("T")


def item_keys(requests: list[ImageRequest]) -> list[str]:
    """Each request's idempotency key: its own if it has one, else one derived from its content
    and how many identical requests came before it — the very keys a local ``imagegen batch``
    gives the same lines (``imagegen._batch_keys``), so the same prompts submitted twice, in any
    order, or run once locally and once on the fleet, are the same requests and are paid for once."""
    return batch_keys(requests)


def worker_config(config: Config, url: str) -> Config:
    """A worker's config: job store, ledger and rate windows in the fleet's Redis, so claims,
    budgets and limits hold for every worker (sections already on a Redis are kept)."""
    updates: dict[str, Any] = {}
    if config.jobs.backend != "redis":
        updates["jobs"] = config.jobs.model_copy(update={"backend": "redis", "url": url})
    if config.ledger.backend not in ("redis", "off"):
        updates["ledger"] = config.ledger.model_copy(update={"backend": "redis", "url": url})
    if config.rate_limits.backend != "redis":
        updates["rate_limits"] = config.rate_limits.model_copy(update={"backend": "redis", "url": url})
    return config.model_copy(update=updates)


def _location(out: str) -> str:
    """A URL as given; a directory made absolute (every worker must see it under this path)."""
    return out if is_url(out) else os.path.abspath(os.path.expanduser(out))


#: How long a worker rides out a Redis outage, command by command, before giving up on a
#: command: long enough for a restart, and a paid result is never dropped for want of Redis.
OUTAGE_RETRIES = 120


def _patient(**kwargs: Any) -> dict[str, Any]:
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError
    from redis.retry import Retry

    return {"retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), OUTAGE_RETRIES),
            "retry_on_error": [ConnectionError, TimeoutError], **kwargs}


def _make_patient(service: Any) -> None:
    """Give a Redis-backed job store or ledger the worker's patience: a write after a paid call
    waits for Redis to come back instead of failing (and the call being paid for again)."""
    client = getattr(service, "_redis", None)
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.connection_kwargs.update(_patient())


class AsyncFleet:
    """One client's handle on a fleet: the Redis at ``url`` (else ``[fleet] url`` in the config)."""

    def __init__(self, client: Any, url: str | None = None) -> None:
        import redis.asyncio as redis_asyncio  # the `redis` extra

        settings: FleetConfig = client.config.fleet
        resolved = url or settings.url
        if not resolved:
            raise ConfigurationError("a fleet needs a Redis URL: pass --fleet redis://... (or url=...), or set "
                                     "[fleet] url in the config")
        self.url: str = resolved
        self.client = client
        self.settings = settings
        self.redis = redis_asyncio.Redis.from_url(self.url)
        self.queue = BatchQueue(self.redis, prefix=settings.key_prefix)

    async def submit(self, requests: Iterable[ImageRequest | str], *, out: str,
                     batch_id: str | None = None) -> str:
        """Enqueue a batch (every request validated first) and return its id at once."""
        items = [r if isinstance(r, ImageRequest) else ImageRequest.build(prompt=r) for r in requests]
        for request in items:
            await self.client.estimate(request)  # unknown providers, bad sizes: refused before enqueuing
        out = _location(out)
        batch_id = batch_id or new_batch_id()
        keys = item_keys(items)
        await self.queue.submit(batch_id, ((i, k, r) for i, (k, r) in enumerate(zip(keys, items, strict=True))),
                                out=out, total=len(items))
        return batch_id

    async def status(self, batch_id: str) -> BatchStatus:
        return await read_status(self.queue, batch_id)

    async def watch(self, batch_id: str, *, interval: float = 0.5) -> AsyncIterator[BatchStatus]:
        """The batch's status every ``interval`` seconds until it is done or cancelled."""
        while True:
            status = await self.status(batch_id)
            yield status
            if status.over:
                return
            await asyncio.sleep(interval)

    async def pause(self, batch_id: str) -> BatchStatus:
        """Workers take no new prompts from the batch (prompts already started finish)."""
        await self.queue.set_state(batch_id, "paused", reason="paused by a user")
        return await self.status(batch_id)

    async def resume(self, batch_id: str) -> BatchStatus:
        state = (await self.queue.meta(batch_id))["state"]
        if state != "paused":
            raise InvalidRequestError(f"batch {batch_id} is {state}, not paused")
        await self.queue.set_state(batch_id, "running")
        return await self.status(batch_id)

    async def cancel(self, batch_id: str) -> BatchStatus:
        """No prompt of the batch starts any more; its results so far are assembled."""
        await self.queue.set_state(batch_id, "cancelled", reason="cancelled by a user")
        await assemble_results(self.queue, batch_id, self.settings.storage_options)
        return await self.status(batch_id)

    async def results(self, batch_id: str) -> list[dict[str, Any]]:
        """Every outcome recorded so far, in prompt order (the lines of ``batch.jsonl``): from
        Redis, or, once a done batch's outcomes have left it, from its ``batch.jsonl``."""
        meta = await self.queue.meta(batch_id)
        if meta.get("outcomes") != "storage":
            return await self.queue.outcomes(batch_id)
        return await asyncio.to_thread(read_results, meta["out"], self.settings.storage_options)

    async def assemble(self, batch_id: str) -> str:
        """(Re)write the batch's ``batch.jsonl`` from what is recorded; returns where it is."""
        return await assemble_results(self.queue, batch_id, self.settings.storage_options)

    async def work(self, *, concurrency: int = 4, name: str | None = None, exit_when_idle: bool = False,
                   stop: asyncio.Event | None = None) -> int:
        """Be a worker until ``stop`` is set (or, with ``exit_when_idle``, no batch is left).
        Returns how many prompts this worker finished."""
        from .._client import AsyncClient

        if concurrency < 1:
            raise InvalidRequestError(f"concurrency must be at least 1, not {concurrency}")
        import redis as redis_sync
        import redis.asyncio as redis_asyncio

        settings = self.settings
        redis = redis_asyncio.Redis.from_url(self.url, **_patient())
        # Not patient: the thread that keeps this worker's prompts its own tries again by itself.
        timeout = max(1.0, settings.visibility_timeout_s / 3)
        holder_redis = redis_sync.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=timeout)
        client = AsyncClient(worker_config(self.client.config, self.url), registry=self.client.registry,
                             transports=self.client._transports)
        for service in (client.jobs, client.ledger):
            _make_patient(service)
        client.limiter = FleetLimiter(redis, prefix=settings.key_prefix, window_s=settings.rate_window_s,
                                      guard_s=settings.rate_guard_s, send_bound_s=settings.rate_send_bound_s,
                                      lease_s=settings.visibility_timeout_s)
        try:
            worker = Worker(client, redis, settings, holder_redis=holder_redis, name=name, concurrency=concurrency)
            return await worker.run(exit_when_idle=exit_when_idle, stop=stop)
        finally:
            await client.aclose()
            await redis.aclose()
            holder_redis.close()

    async def aclose(self) -> None:
        await self.redis.aclose()


class Fleet:
    """The blocking twin of `AsyncFleet` (``Client.fleet``): the same methods, run on the client's loop."""

    def __init__(self, fleet: AsyncFleet, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._fleet = fleet
        self._runner = run

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return cast(T, self._runner(coro))

    @property
    def url(self) -> str:
        return self._fleet.url

    def submit(self, requests: Iterable[ImageRequest | str], *, out: str, batch_id: str | None = None) -> str:
        return self._run(self._fleet.submit(list(requests), out=out, batch_id=batch_id))

    def status(self, batch_id: str) -> BatchStatus:
        return self._run(self._fleet.status(batch_id))

    def watch(self, batch_id: str, *, interval: float = 0.5) -> Iterable[BatchStatus]:
        import time

        while True:
            status = self.status(batch_id)
            yield status
            if status.over:
                return
            time.sleep(interval)

    def pause(self, batch_id: str) -> BatchStatus:
        return self._run(self._fleet.pause(batch_id))

    def resume(self, batch_id: str) -> BatchStatus:
        return self._run(self._fleet.resume(batch_id))

    def cancel(self, batch_id: str) -> BatchStatus:
        return self._run(self._fleet.cancel(batch_id))

    def results(self, batch_id: str) -> list[dict[str, Any]]:
        return self._run(self._fleet.results(batch_id))

    def assemble(self, batch_id: str) -> str:
        return self._run(self._fleet.assemble(batch_id))

    def work(self, *, concurrency: int = 4, name: str | None = None, exit_when_idle: bool = False) -> int:
        return self._run(self._fleet.work(concurrency=concurrency, name=name, exit_when_idle=exit_when_idle))

    def close(self) -> None:
        self._run(self._fleet.aclose())

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
