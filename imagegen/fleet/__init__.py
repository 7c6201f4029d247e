"""One batch across a fleet of workers, on Redis Streams.

    imagegen batch prompts.jsonl --fleet redis://queue:6379/0 --out s3://bucket/run-7   # prints the id
    imagegen worker --fleet redis://queue:6379/0          # on as many machines as you like
    imagegen batch status ID --fleet redis://queue:6379/0 --watch

or, in Python, ``client.fleet("redis://...")``: ``submit``, ``status``, ``watch``, ``pause``,
``resume``, ``cancel``, ``results`` and ``work`` (be a worker).

**The engine: Redis Streams with consumer groups**, not a home-made scheduler and not a
task framework. Why, against Celery, Dramatiq and Arq on Redis:

- *Delivery guarantees.* A consumer group gives at-least-once delivery with an explicit
  pending-entries list: an entry read with XREADGROUP stays pending, owned by that worker,
  until XACK. imagegen acknowledges only after the outcome is recorded, and turns
  at-least-once into exactly-once *payment* with the idempotency claim and the job store.
  Celery's Redis transport and Arq give the same at-least-once only with extra settings
  (``acks_late``; Arq's re-run on timeout), and Dramatiq's Redis broker does it with its own
  Lua scripts: none of them is stronger, and each is one more moving part to learn.
- *Visibility timeout.* XAUTOCLAIM hands an entry idle for longer than
  ``[fleet] visibility_timeout_s`` to another worker; a live worker resets its entries'
  idle time (XCLAIM JUSTID) while it works, so a slow Wireflow job is never run twice.
  Celery's Redis ``visibility_timeout`` cannot be renewed by a running task, the classic
  cause of long tasks running twice.
- *Dead workers.* Nothing has to notice a death: the dead worker's entries go idle and
  are reclaimed, its concurrency leases and claims run out. XPENDING's delivery count
  stops a prompt that kills every worker (after ``max_deliveries`` it is recorded as failed).
- *Operational familiarity.* It is plain Redis (5.0+, 6.2+ for XAUTOCLAIM), the server
  imagegen already uses for shared rate windows, ledger, job store and cache; ``redis-cli
  XINFO GROUPS`` / ``XPENDING`` show the queue; no new dependency (``redis`` is one), no
  broker-specific worker process model to fit an asyncio client into (Celery and Dramatiq
  run tasks in threads or forked processes), and no pickle on the wire.

What Redis must do for this: persist (``appendonly yes``; ``appendfsync always`` if an
acknowledged enqueue must survive a power cut). A Redis that restarts without its data
loses the queue, like any broker.

**Exactly once.** Every prompt carries an idempotency key derived from its content. A
worker runs it under the job store's idempotency claim on that key (a lease it renews; a
second holder waits for the first's outcome); the job store and ledger live in the fleet's
Redis, so a prompt handed to a second worker after the first died resumes the first one's job
instead of paying again. A *slow* worker is never taken for a dead one (``_lease``): a thread
of its own keeps its prompts (and their claims) its own while its event loop is stalled, and
right before a request goes out the worker checks that it still holds the prompt and its
claim, so a worker that lost either sends nothing. Where a vendor has idempotency
(Wireflow's ``Idempotency-Key``) even a request cut off in flight is not paid twice. Where it
has none (Gemini, nano-banana2), a worker killed (or frozen, or cut off from Redis, for the
whole visibility timeout) between sending a request and recording its job costs at most one
extra charge for each prompt it had in flight: at most ``--concurrency`` per worker lost.

**Fleet-wide limits.** Workers share per-provider requests-per-minute windows, concurrency
caps (``max_concurrency`` of a provider holds across the fleet, with leases that a dead
worker's slots run out of) and 429 pauses (see `FleetLimiter`); budgets hold because the
ledger is in the same Redis.
"""

from ._api import AsyncFleet, Fleet, item_keys
from ._limits import FleetLimiter
from ._status import BatchStatus, ProviderProgress, WorkerView
from ._storage import ResultStorage

__all__ = ["AsyncFleet", "BatchStatus", "Fleet", "FleetLimiter", "ProviderProgress", "ResultStorage", "WorkerView",
           "item_keys"]
