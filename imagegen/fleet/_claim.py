"""The one place a fleet worker claims a request before paying for it.

The stream already hands each prompt to one worker at a time; the claim covers what the
stream cannot: a prompt handed out again while its first worker is still alive (a pause
in its heartbeat, a network partition) or the same request in two batches. The holder
renews the claim while it works; a killed holder's claim runs out after ``lease_s``, and
whoever takes the prompt next calls ``generate`` with the same idempotency key, which
resumes the job the dead worker left in the job store (or, for Wireflow, has the vendor
replay the execution under the same ``Idempotency-Key``) instead of paying again.

The claim is a Redis key (``SET NX PX``) in the fleet's Redis until the job store's own
idempotency claim (issue 13) is on main; `run_claimed` is the only caller to switch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import RedisError

from .._models import ImageRequest, ImageResult

__all__ = ["Claims", "run_claimed"]

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class Claims:
    """Claims on idempotency keys held by one worker (``owner``)."""

    def __init__(self, redis: Any, *, prefix: str, owner: str, lease_s: float) -> None:
        self._redis = redis
        self._prefix = f"{prefix}claim:"
        self.owner = owner
        self.lease_ms = max(1, int(lease_s * 1000))
        self.held: set[str] = set()
        self._release = redis.register_script(_RELEASE_LUA)
        self._renew = redis.register_script(_RENEW_LUA)

    async def acquire(self, key: str) -> bool:
        if await self._redis.set(self._prefix + key, self.owner, nx=True, px=self.lease_ms):
            self.held.add(key)
            return True
        return False

    async def release(self, key: str) -> None:
        self.held.discard(key)
        await self._release(keys=[self._prefix + key], args=[self.owner])

    async def renew(self) -> None:
        for key in list(self.held):
            await self._renew(keys=[self._prefix + key], args=[self.owner, self.lease_ms])


async def run_claimed(client: Any, request: ImageRequest, claims: Claims, *, poll_s: float = 0.2) -> ImageResult:
    """Run ``request`` (which carries its idempotency key) at most once across the fleet."""
    key = request.idempotency_key
    assert key is not None, "fleet requests always carry their item key"
    while not await claims.acquire(key):  # noqa: ASYNC110 - polling Redis, not a local condition
        await asyncio.sleep(poll_s)  # another worker is on it: its outcome is what we will return
    try:
        result: ImageResult = await client.generate(request)
        return result
    finally:
        try:
            await claims.release(key)
        except RedisError:
            pass  # Redis is away: the claim runs out by itself, and the result is not lost
