"""A fleet worker: takes prompts from every running batch's stream, runs them, records them.

One worker is one asyncio loop running up to ``concurrency`` prompts at once. It reads new
prompts with XREADGROUP and, every few seconds, takes over prompts that another worker has
held silently for longer than the visibility timeout (XAUTOCLAIM): that worker died. While a
prompt is being worked on, a thread of the worker resets its idle time (`Holdings`, robust to
a stalled event loop), and right before its request goes out the worker checks that the
prompt is still its own (`check_fence`): a slow worker is never taken for a dead one, and a
worker that lost a prompt never sends it. A prompt is acknowledged (XACK) only after its
outcome is recorded, so a worker killed at any point loses nothing: the prompt is handed out
again and, through the idempotency claim and the job store, not paid twice.

Redis going away is waited out: the worker retries with a backoff and goes on where it was
(the stream, the pending entries and the outcomes are all in Redis, which should persist
them: ``appendonly yes``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from redis.exceptions import RedisError

from .._config import FleetConfig
from .._errors import BudgetExceededError, ImageGenError, StorageError
from .._models import ImageRequest, ImageResult
from ._claim import run_claimed
from ._lease import Fence, Holdings, PromptTakenOver, fence, hold_script
from ._queue import GROUP, BatchQueue
from ._storage import RESULTS_NAME, ResultStorage

__all__ = ["Worker", "assemble_results"]

log = logging.getLogger("imagegen.fleet")


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def assemble_results(queue: BatchQueue, batch_id: str, storage_options: dict[str, Any]) -> str:
    """Write the batch's ``batch.jsonl`` (every outcome, in prompt order) next to its images;
    where it is. A done batch whose outcomes already left Redis has it written: left as it is."""
    import json

    meta = await queue.meta(batch_id)
    storage = ResultStorage(meta["out"], storage_options)
    if meta.get("outcomes") == "storage":
        return storage.path(RESULTS_NAME)
    lines = await queue.outcomes(batch_id)
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    return await asyncio.to_thread(storage.write, RESULTS_NAME, body)


class Worker:
    """Runs prompts from the fleet's batches with ``client`` (an ``AsyncClient``)."""

    def __init__(self, client: Any, redis: Any, settings: FleetConfig, *, holder_redis: Any,
                 name: str | None = None, concurrency: int = 4) -> None:
        """``redis`` is the worker's asyncio client; ``holder_redis`` a synchronous client for
        the thread that keeps its prompts its own (`Holdings`)."""
        self.client = client
        self.settings = settings
        self.name = name or default_worker_name()
        self.concurrency = concurrency
        self.queue = BatchQueue(redis, prefix=settings.key_prefix)
        self.holdings = Holdings(holder_redis, lambda batch_id: self.queue.key(batch_id, "items"), GROUP,
                                 self.name, settings.visibility_timeout_s / 3)
        self._hold = hold_script(redis)
        self._in_flight: dict[asyncio.Task[None], tuple[str, bytes]] = {}
        self._storages: dict[str, ResultStorage] = {}
        self.processed = 0

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, *, exit_when_idle: bool = False, stop: asyncio.Event | None = None) -> int:
        """Work until ``stop`` is set (or, with ``exit_when_idle``, until no batch is left)."""
        stop = stop or asyncio.Event()
        self.holdings.start()
        backoff = 0.2
        last_reclaim = 0.0
        try:
            while not stop.is_set():
                try:
                    batches = await self.queue.running_batches()
                    if time.monotonic() - last_reclaim > self._reclaim_every:
                        last_reclaim = time.monotonic()
                        for batch_id in batches:
                            self._start(await self.queue.reclaim(batch_id, self.name, self._min_idle_ms,
                                                                 self._free()))
                    if exit_when_idle and not self._in_flight and not await self.queue.has_active():
                        break
                    if not batches or not self._free():
                        await self._wait_a_little(stop)
                        continue
                    self._start(await self.queue.read(batches, self.name, self._free(), block_ms=200))
                    backoff = 0.2
                except RedisError as exc:
                    log.warning("fleet Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            await asyncio.to_thread(self.holdings.stop)
        return self.processed

    @property
    def _min_idle_ms(self) -> int:
        return int(self.settings.visibility_timeout_s * 1000)

    @property
    def _reclaim_every(self) -> float:
        return self.settings.visibility_timeout_s / 2

    def _free(self) -> int:
        return self.concurrency - len(self._in_flight)

    async def _wait_a_little(self, stop: asyncio.Event) -> None:
        pending = [asyncio.ensure_future(stop.wait()), *self._in_flight]
        done, _ = await asyncio.wait(pending, timeout=0.2, return_when=asyncio.FIRST_COMPLETED)
        pending[0].cancel()

    def _start(self, entries: list[tuple[str, bytes, dict[bytes, bytes]]]) -> None:
        for batch_id, entry_id, fields in entries:
            self.holdings.add(batch_id, entry_id)  # renewed from now on, before the task even starts
            task = asyncio.create_task(self._guarded(batch_id, entry_id, fields))
            self._in_flight[task] = (batch_id, entry_id)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.holdings.drop(*self._in_flight.pop(task))

    # -- one prompt -------------------------------------------------------------------------

    async def _guarded(self, batch_id: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Process one entry; an unknown failure is logged and the entry left for redelivery."""
        try:
            await self._process(batch_id, entry_id, fields)
        except PromptTakenOver as exc:
            log.warning("batch %s: %s", batch_id, exc)
        except RedisError as exc:
            log.warning("batch %s: Redis failed mid-prompt (%s); it will be handed out again", batch_id, exc)
        except Exception:
            log.exception("batch %s: prompt %s failed unexpectedly; it will be handed out again",
                          batch_id, entry_id)

    async def _process(self, batch_id: str, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        index = int(fields[b"i"])
        request = ImageRequest.model_validate_json(fields[b"req"])
        request = request.model_copy(update={"idempotency_key": fields[b"key"].decode()})
        line: dict[str, Any] = {"index": index, "prompt": request.prompt, "key": request.idempotency_key}
        meta = await self.queue.meta(batch_id)
        if await self.queue.is_recorded(batch_id, index):
            await self.queue.ack(batch_id, entry_id)  # finished by a worker that died before its ack
            return
        if meta["state"] in ("cancelled", "done"):
            # Done: every prompt has its outcome (which may have left Redis already, so
            # `is_recorded` above cannot be the only check).
            await self.queue.ack(batch_id, entry_id)
            return
        deliveries = await self.queue.deliveries(batch_id, entry_id)
        if not deliveries:
            return  # no longer pending: another worker finished it
        # The delivery count is the fencing token: what this worker must still hold when it sends.
        self.holdings.add(batch_id, entry_id, deliveries)
        fence.set(Fence(self._hold, self.holdings, self.queue.key(batch_id, "items"), batch_id, entry_id,
                        deliveries))
        if deliveries > self.settings.max_deliveries:
            line.update(status="failed", error={
                "type": "AbandonedPromptError", "retryable": False,
                "message": f"handed to workers {deliveries} times without an outcome; see the workers' logs"})
        else:
            try:
                result = await run_claimed(self.client, request)
            except StorageError as exc:
                log.warning("batch %s: prompt %s met a storage fault (%s); it will be handed out again",
                            batch_id, index, exc.message)
                return  # not an outcome: left pending, handed out again after the visibility timeout
            except BudgetExceededError as exc:
                await self.queue.set_state(batch_id, "paused", reason=f"budget: {exc.message}")
                log.warning("batch %s paused: %s", batch_id, exc.message)
                return  # left pending: handed out again once the batch is resumed
            except ImageGenError as exc:
                line.update(status="failed", provider=getattr(exc, "provider", None), error=exc.to_dict())
            else:
                storage = self._storage(meta["out"])
                width = len(str(max(int(meta["total"]) - 1, 0)))
                images = await asyncio.to_thread(storage.save_images, result, f"{index:0{width}d}")
                line.update(_success_fields(result), images=images)
        line["worker"] = self.name
        recorded = await self.queue.record(batch_id, index, line)
        if recorded == 2 or (recorded and (await self.queue.meta(batch_id))["state"] == "cancelled"):
            # The last outcome, or one that finished after a cancel: the results file is rewritten.
            await assemble_results(self.queue, batch_id, self.settings.storage_options)
            if recorded == 2:  # all in batch.jsonl now: Redis need not keep ~300 B per prompt
                await self.queue.release_outcomes(batch_id)
        await self.queue.ack(batch_id, entry_id)
        self.processed += 1

    def _storage(self, out: str) -> ResultStorage:
        if out not in self._storages:
            self._storages[out] = ResultStorage(out, self.settings.storage_options)
        return self._storages[out]


def _success_fields(result: ImageResult) -> dict[str, Any]:
    return {"status": "succeeded", "job_id": result.job_id, "provider": result.provider, "model": result.model,
            "cost_usd": result.cost.usd, "cost_estimated": result.cost.estimated, "cached": result.cached,
            "latency_s": round(result.latency_s, 4)}
