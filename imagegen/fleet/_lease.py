"""What a worker holds, kept its own for as long as its process runs, and a fence before each send.

A prompt read from a batch's stream is *pending* for the worker that read it. Another worker
takes it over (XAUTOCLAIM) once it has been idle for the visibility timeout: that is how a
dead worker's prompts get done. A slow worker must never look dead, and a worker that lost a
prompt must never send it, or the vendor is paid twice. Hence:

- **Renewed from a thread** (`Holdings`): a thread of the worker's own resets the idle time of
  every prompt the worker still holds, every third of the visibility timeout, on its own Redis
  connection. An event loop stalled by an SDK import, a long decode or a CPU-starved machine
  does not stop it; only a process that gets no CPU at all (stopped, suspended) or cannot reach
  Redis for the whole visibility timeout loses its prompts, and that is a dead worker.
- **Renewed only while still held** (`_HOLD_LUA`): the renewal never takes a prompt back from
  the worker that took it over (``XCLAIM`` with no idle check would), and it checks the fencing
  token too: the delivery count the worker got the prompt with, so a prompt that came back to
  the same worker by a later delivery is not mistaken for the first one.
- **Fenced before each send** (`check_fence`, called by `FleetLimiter.slot` right before a
  call goes out, retries and each part of a split call included): the worker checks in one
  script that it still holds the prompt with its token, and resets its idle time; a worker
  that lost it raises `PromptTakenOver` and sends nothing. The idempotency claim of the
  prompt's key (``imagegen._claims``) is checked and renewed there too, and renewed from the
  same thread while the call runs, so a worker whose loop stalls past the claim's lease
  neither loses the key to another batch with the same prompt nor sends on a lapsed claim.

What remains is the documented bound for vendors without idempotency: a worker that dies (or
stands entirely still for the whole visibility timeout) *after* its request went out.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

__all__ = ["Fence", "Holdings", "PromptTakenOver", "check_fence", "fence"]

log = logging.getLogger("imagegen.fleet")

_HOLD_LUA = """
-- KEYS[1]: a batch's stream. ARGV: group, consumer, then (entry id, token) pairs; token 0 = any delivery.
-- Resets the idle time of each entry this consumer still holds with that token (JUSTID: not a new
-- delivery) and returns the ids it no longer holds: acknowledged, taken over, or delivered again.
local lost = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], tonumber(ARGV[i + 1])
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  if entry and entry[2] == ARGV[2] and (token == 0 or tonumber(entry[4]) == token) then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
"""


class PromptTakenOver(Exception):  # not an ImageGenError: nothing failed, the prompt moved on
    """This worker no longer holds the prompt (another worker took it over): nothing was sent."""


@dataclass(frozen=True)
class HeldClaim:
    """The idempotency claim a prompt's call holds (``imagegen._claims.current_claim``)."""

    store: Any
    key: str
    owner: str
    lease_s: float


class Holdings:
    """The prompts one worker holds (batch, entry id) -> fencing token, renewed from a thread."""

    def __init__(self, redis: Any, stream_key: Any, group: str, consumer: str, period_s: float) -> None:
        self._redis = redis  # a synchronous client of the worker's own: the thread's connection
        self._hold = redis.register_script(_HOLD_LUA)
        self._stream_key = stream_key
        self.group, self.consumer, self.period_s = group, consumer, period_s
        self._lock = threading.Lock()
        self._held: dict[tuple[str, bytes], int] = {}
        self._claims: dict[tuple[str, bytes], HeldClaim] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, batch_id: str, entry_id: bytes, token: int = 0) -> None:
        with self._lock:
            self._held[(batch_id, entry_id)] = token

    def drop(self, batch_id: str, entry_id: bytes) -> None:
        with self._lock:
            self._held.pop((batch_id, entry_id), None)
            self._claims.pop((batch_id, entry_id), None)

    def hold_claim(self, batch_id: str, entry_id: bytes, claim: HeldClaim) -> None:
        with self._lock:
            if (batch_id, entry_id) in self._held:
                self._claims[(batch_id, entry_id)] = claim

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"imagegen-fleet-hold-{self.consumer}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.period_s + 5)

    def _run(self) -> None:
        wait = self.period_s
        while not self._stop.wait(wait):
            try:
                self.renew()
                wait = self.period_s
            except RedisError as exc:  # Redis away: try again soon, the prompts stay pending
                log.warning("fleet: could not renew the prompts this worker holds (%s); retrying", exc)
                wait = min(self.period_s, 0.5)

    def renew(self) -> list[tuple[str, bytes]]:
        """Reset the idle time of every prompt still held; returns the ones this worker lost."""
        with self._lock:
            held = dict(self._held)
            claims = list(self._claims.values())
        by_batch: dict[str, list[Any]] = {}
        for (batch_id, entry_id), token in held.items():
            by_batch.setdefault(batch_id, []).extend((entry_id, token))
        lost: list[tuple[str, bytes]] = []
        for batch_id, pairs in by_batch.items():
            gone = self._hold(keys=[self._stream_key(batch_id)], args=[self.group, self.consumer, *pairs])
            lost.extend((batch_id, entry_id) for entry_id in gone)
        for claim in claims:
            try:
                claim.store.renew_claim(claim.key, claim.owner, claim.lease_s)
            except Exception as exc:  # a store fault: the fence checks the claim again before sending
                log.warning("fleet: could not renew the claim on %r (%s)", claim.key, exc)
        for batch_id, entry_id in lost:
            log.warning("fleet: prompt %s of batch %s was taken over by another worker; this one will not "
                        "send it", entry_id.decode(), batch_id)
        return lost


@dataclass(frozen=True)
class Fence:
    """One prompt a worker is running: what it must still hold when its request goes out."""

    hold: Any  # the async twin of _HOLD_LUA, on the worker's Redis
    holdings: Holdings
    stream: str
    batch_id: str
    entry_id: bytes
    token: int

    async def check(self) -> None:
        lost = await self.hold(keys=[self.stream], args=[self.holdings.group, self.holdings.consumer,
                                                         self.entry_id, self.token])
        if lost:
            raise PromptTakenOver(f"prompt {self.entry_id.decode()} of batch {self.batch_id} was taken over by "
                                  "another worker; it was not sent from here")
        await self._check_claim()

    async def _check_claim(self) -> None:
        from .._claims import current_claim

        claim = current_claim.get()
        if claim is None:
            return
        held = HeldClaim(*claim)
        if not await asyncio.to_thread(held.store.renew_claim, held.key, held.owner, held.lease_s):
            raise PromptTakenOver(f"the claim on idempotency key {held.key!r} lapsed while this worker stood "
                                  "still; it was not sent from here")
        self.holdings.hold_claim(self.batch_id, self.entry_id, held)


#: The prompt the running task works on (set by the worker; read by `check_fence`).
fence: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("imagegen_fleet_fence", default=None)


async def check_fence() -> None:
    """Raise `PromptTakenOver` unless the current task's prompt (if any) is still this worker's."""
    current = fence.get()
    if current is not None:
        await current.check()


def hold_script(redis: Any) -> Any:
    """`_HOLD_LUA` registered on ``redis`` (async or not)."""
    return redis.register_script(_HOLD_LUA)
