"""A batch's life in Redis: its stream of prompts, its state, its outcomes and its counters.

Keys, under the fleet's prefix (``imagegen:fleet:`` by default), for batch ``B``:

- ``b:B:items``    the stream of prompts (one entry per prompt: index, key, request JSON), read
                   through the consumer group ``workers``;
- ``b:B:meta``     a hash: state (running, paused, cancelled, done), total, out, created_at,
                   reason (why it was paused or cancelled);
- ``b:B:outcomes`` a hash index -> the outcome's JSON line, written once per index; once the
                   batch is done and its ``batch.jsonl`` written, it is dropped (`release_outcomes`):
                   the results live in the results storage, and Redis keeps only the batch's meta,
                   counters and latest failures (a few hundred bytes, not ~300 B per prompt);
- ``b:B:counts``   a hash: succeeded, failed, usd, ``p:<provider>:n`` and ``p:<provider>:usd``,
                   first_at, last_at;
- ``b:B:times``    a sorted set index -> when it finished (recent throughput, ETA);
- ``b:B:failures`` a list of the latest failures (index, prompt, error);
- ``batches``      a sorted set of every batch id by creation time; ``active`` the set workers read.

An outcome is recorded by one Lua script (``_RECORD_LUA``): the outcome, the counters and the
batch's completion change together or not at all, and a second recording of the same index
(a redelivered prompt) changes nothing, so counts stay exact whatever a worker's fate. Nor does
any recording once the batch is done, when its outcomes may have left Redis already.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from .._models import ImageRequest

__all__ = ["GROUP", "BatchQueue", "new_batch_id"]

GROUP = "workers"
#: Batch keys are kept this long after the batch is over (status and results stay readable).
KEEP_FINISHED_S = 7 * 24 * 3600
FAILURES_KEPT = 100
_ADD_CHUNK = 500

_RECORD_LUA = """
-- KEYS: outcomes, counts, times, failures, meta, active
-- ARGV: index, outcome json, status, provider, usd, now, batch id, keep seconds, failure json
if redis.call('HGET', KEYS[5], 'state') == 'done' then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
if ARGV[4] ~= '' then
  redis.call('HINCRBY', KEYS[2], 'p:' .. ARGV[4] .. ':n', 1)
  redis.call('HINCRBYFLOAT', KEYS[2], 'p:' .. ARGV[4] .. ':usd', ARGV[5])
end
redis.call('HINCRBYFLOAT', KEYS[2], 'usd', ARGV[5])
redis.call('HSETNX', KEYS[2], 'first_at', ARGV[6])
redis.call('HSET', KEYS[2], 'last_at', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[1])
if ARGV[9] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[9])
  redis.call('LTRIM', KEYS[4], 0, %d)
end
local total = tonumber(redis.call('HGET', KEYS[5], 'total') or '0')
if redis.call('HLEN', KEYS[1]) >= total then
  redis.call('HSET', KEYS[5], 'state', 'done', 'finished_at', ARGV[6])
  redis.call('SREM', KEYS[6], ARGV[7])
  return 2
end
return 1
""".replace("%d", str(FAILURES_KEPT - 1))


_RELEASE_LUA = """
-- KEYS: meta, outcomes, times. A done batch's outcomes leave Redis (they are in batch.jsonl).
if redis.call('HGET', KEYS[1], 'state') ~= 'done' then return 0 end
redis.call('HSET', KEYS[1], 'outcomes', 'storage')
redis.call('DEL', KEYS[2], KEYS[3])
return 1
"""


def new_batch_id() -> str:
    return f"b{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:10]}"


class BatchQueue:
    """The Redis side of every batch under one prefix (async; ``redis.asyncio``)."""

    def __init__(self, redis: Any, *, prefix: str = "imagegen:fleet:") -> None:
        self.redis = redis
        self.prefix = prefix
        self._record = redis.register_script(_RECORD_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    def key(self, batch_id: str, part: str) -> str:
        return f"{self.prefix}b:{batch_id}:{part}"

    # -- submitting -------------------------------------------------------------------------

    async def submit(self, batch_id: str, items: Iterable[tuple[int, str, ImageRequest]], *,
                     out: str, total: int) -> None:
        """Enqueue every (index, key, request); workers see the batch once all of it is in."""
        stream = self.key(batch_id, "items")
        meta = self.key(batch_id, "meta")
        if await self.redis.exists(meta):
            from .._errors import InvalidRequestError

            raise InvalidRequestError(f"batch {batch_id!r} already exists; choose another id")
        await self.redis.hset(meta, mapping={"state": "enqueuing", "total": total, "out": out,
                                             "created_at": time.time()})
        pipe = self.redis.pipeline(transaction=False)
        pending = 0
        for index, key, request in items:
            pipe.xadd(stream, {"i": index, "key": key, "req": request.model_dump_json(exclude_defaults=True)})
            pending += 1
            if pending >= _ADD_CHUNK:
                await pipe.execute()
                pending = 0
        await pipe.execute()
        await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(meta, "state", "running" if total else "done")
        pipe.zadd(f"{self.prefix}batches", {batch_id: time.time()})
        if total:
            pipe.sadd(f"{self.prefix}active", batch_id)
        await pipe.execute()

    # -- control ----------------------------------------------------------------------------

    async def meta(self, batch_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.key(batch_id, "meta"))
        if not raw:
            from .._errors import JobNotFoundError

            raise JobNotFoundError(f"no fleet batch {batch_id!r} in this Redis (prefix {self.prefix!r})")
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_state(self, batch_id: str, state: str, *, reason: str = "") -> str:
        """Move a batch to running, paused or cancelled; returns the state it had."""
        meta = await self.meta(batch_id)
        previous = meta["state"]
        if previous in ("done", "cancelled"):
            return previous
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key(batch_id, "meta"), mapping={"state": state, "reason": reason})
        if state == "cancelled":
            pipe.srem(f"{self.prefix}active", batch_id)
            pipe.hset(self.key(batch_id, "meta"), "finished_at", time.time())
        await pipe.execute()
        if state == "cancelled":
            await self.expire(batch_id)
        return previous

    async def expire(self, batch_id: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for part in ("items", "meta", "outcomes", "counts", "times", "failures"):
            pipe.expire(self.key(batch_id, part), KEEP_FINISHED_S)
        await pipe.execute()

    async def running_batches(self) -> list[str]:
        """Active batches whose state is running (paused ones are skipped by readers)."""
        ids = sorted(i.decode() for i in await self.redis.smembers(f"{self.prefix}active"))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for batch_id in ids:
            pipe.hget(self.key(batch_id, "meta"), "state")
        states = await pipe.execute()
        return [b for b, s in zip(ids, states, strict=True) if s == b"running"]

    async def has_active(self) -> bool:
        return bool(await self.redis.scard(f"{self.prefix}active"))

    # -- reading ----------------------------------------------------------------------------

    async def read(self, batch_ids: list[str], consumer: str, count: int,
                   block_ms: int) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        """New prompts for ``consumer``: (batch id, entry id, fields)."""
        if not batch_ids or count < 1:
            return []
        streams = {self.key(b, "items"): ">" for b in batch_ids}
        answer = await self.redis.xreadgroup(GROUP, consumer, streams, count=count, block=block_ms)
        return [(self._batch_of(stream), entry_id, fields)
                for stream, entries in answer or [] for entry_id, fields in entries if fields]

    async def reclaim(self, batch_id: str, consumer: str, min_idle_ms: int,
                      count: int) -> list[tuple[str, bytes, dict[bytes, bytes]]]:
        """Prompts a dead (or silent) worker held longer than ``min_idle_ms``, now ``consumer``'s."""
        if count < 1:
            return []
        answer = await self.redis.xautoclaim(self.key(batch_id, "items"), GROUP, consumer, min_idle_ms,
                                             start_id="0-0", count=count)
        entries = answer[1] if answer else []
        return [(batch_id, entry_id, fields) for entry_id, fields in entries if fields]

    async def deliveries(self, batch_id: str, entry_id: bytes) -> int:
        info = await self.redis.xpending_range(self.key(batch_id, "items"), GROUP, min=entry_id, max=entry_id,
                                               count=1)
        return int(info[0]["times_delivered"]) if info else 0

    async def ack(self, batch_id: str, entry_id: bytes) -> None:
        """Done with an entry: acknowledged, and deleted (its outcome is kept; a million-prompt
        batch does not keep a million requests in Redis's memory until it expires)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(self.key(batch_id, "items"), GROUP, entry_id)
        pipe.xdel(self.key(batch_id, "items"), entry_id)
        await pipe.execute()

    def _batch_of(self, stream: bytes | str) -> str:
        name = stream.decode() if isinstance(stream, bytes) else stream
        return name[len(self.prefix) + 2:-len(":items")]

    # -- outcomes ---------------------------------------------------------------------------

    async def is_recorded(self, batch_id: str, index: int) -> bool:
        return bool(await self.redis.hexists(self.key(batch_id, "outcomes"), str(index)))

    async def record(self, batch_id: str, index: int, line: dict[str, Any]) -> int:
        """Record one prompt's outcome: 0 already recorded, 1 recorded, 2 recorded and the batch is done."""
        failure = ""
        if line["status"] == "failed":
            failure = json.dumps({"index": index, "prompt": line.get("prompt"), "error": line.get("error")})
        keys = [self.key(batch_id, p) for p in ("outcomes", "counts", "times", "failures", "meta")]
        done = await self._record(keys=[*keys, f"{self.prefix}active"], args=[
            index, json.dumps(line), line["status"], line.get("provider") or "", line.get("cost_usd") or 0.0,
            time.time(), batch_id, KEEP_FINISHED_S, failure])
        if int(done) == 2:
            await self.expire(batch_id)
        return int(done)

    async def release_outcomes(self, batch_id: str) -> bool:
        """Drop a done batch's outcomes (and completion times) from Redis, once its
        ``batch.jsonl`` holds them all; False (nothing dropped) unless the batch is done."""
        keys = [self.key(batch_id, p) for p in ("meta", "outcomes", "times")]
        return bool(await self._release(keys=keys))

    async def outcomes(self, batch_id: str) -> list[dict[str, Any]]:
        """Every recorded outcome, in prompt order."""
        raw = await self.redis.hgetall(self.key(batch_id, "outcomes"))
        lines = [json.loads(v) for v in raw.values()]
        return sorted(lines, key=lambda line: line["index"])
