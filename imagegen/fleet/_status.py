"""Where a fleet batch stands, read from Redis by any machine: `BatchStatus`."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, Field

from ._queue import BatchQueue

__all__ = ["BatchStatus", "ProviderProgress", "WorkerView", "read_status"]

#: Throughput and the ETA are measured over the last this many seconds.
RECENT_S = 60.0


class ProviderProgress(BaseModel):
    """One provider's share of a batch."""

    #: Prompts it finished, failures included.
    done: int = 0
    usd: float = 0.0
    #: Prompts it finished per minute, over the batch's running time.
    per_minute: float = 0.0


class WorkerView(BaseModel):
    """One worker as the batch's consumer group sees it."""

    #: Prompts it holds right now (read, no outcome yet).
    holding: int = 0
    #: Seconds since it last read or renewed anything: a dead worker's grows past the visibility timeout.
    idle_s: float = 0.0


class BatchStatus(BaseModel):
    """Progress, spend, failures and an ETA for one fleet batch."""

    batch_id: str
    state: str  # running | paused | cancelled | done
    reason: str = ""
    out: str
    total: int
    succeeded: int = 0
    failed: int = 0
    #: Prompts no worker will run (the batch was cancelled before they started).
    cancelled: int = 0
    usd: float = 0.0
    providers: dict[str, ProviderProgress] = Field(default_factory=dict)
    #: The latest failures (newest first), each ``{"index", "prompt", "error"}``.
    failures: list[dict[str, Any]] = Field(default_factory=list)
    elapsed_s: float = 0.0
    #: Prompts finished per minute over the last minute (all workers together).
    per_minute: float = 0.0
    eta_s: float | None = None
    #: The workers that have taken prompts of this batch, by name.
    workers: dict[str, WorkerView] = Field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def over(self) -> bool:
        return self.state in ("done", "cancelled")


async def read_status(queue: BatchQueue, batch_id: str) -> BatchStatus:
    meta = await queue.meta(batch_id)
    pipe = queue.redis.pipeline(transaction=False)
    pipe.hgetall(queue.key(batch_id, "counts"))
    pipe.lrange(queue.key(batch_id, "failures"), 0, 19)
    now = time.time()
    pipe.zcount(queue.key(batch_id, "times"), now - RECENT_S, "+inf")
    raw, failures, recent = await pipe.execute()
    workers = await _workers(queue, batch_id)
    counts = {k.decode(): v.decode() for k, v in raw.items()}
    total = int(meta["total"])
    succeeded, failed = int(counts.get("succeeded", 0)), int(counts.get("failed", 0))
    created = float(meta["created_at"])
    end = float(meta.get("finished_at") or now)
    elapsed = max(end - created, 1e-9)
    providers = {}
    for field, value in counts.items():
        if field.startswith("p:") and field.endswith(":n"):
            name = field[2:-2]
            done = int(value)
            providers[name] = ProviderProgress(done=done, usd=round(float(counts.get(f"p:{name}:usd", 0)), 9),
                                               per_minute=round(done / elapsed * 60, 2))
    remaining = total - succeeded - failed
    window = min(RECENT_S, max(now - created, 1e-9))
    per_minute = recent / window * 60 if meta["state"] not in ("done", "cancelled") else \
        (succeeded + failed) / elapsed * 60
    eta = None
    if meta["state"] == "running" and per_minute > 0:
        eta = round(remaining / per_minute * 60, 1)
    elif meta["state"] == "done":
        eta = 0.0
    return BatchStatus(
        batch_id=batch_id, state=meta["state"], reason=meta.get("reason", ""), out=meta["out"], total=total,
        succeeded=succeeded, failed=failed, cancelled=remaining if meta["state"] == "cancelled" else 0,
        usd=round(float(counts.get("usd", 0)), 9), providers=providers,
        failures=[json.loads(f) for f in failures], elapsed_s=round(elapsed, 3),
        per_minute=round(per_minute, 2), eta_s=eta, workers=workers)


async def _workers(queue: BatchQueue, batch_id: str) -> dict[str, WorkerView]:
    from redis.exceptions import ResponseError

    from ._queue import GROUP

    try:
        consumers = await queue.redis.xinfo_consumers(queue.key(batch_id, "items"), GROUP)
    except ResponseError:  # the stream expired with the batch
        return {}
    return {c["name"].decode() if isinstance(c["name"], bytes) else c["name"]:
            WorkerView(holding=int(c["pending"]), idle_s=round(int(c["idle"]) / 1000, 1)) for c in consumers}
