"""One key for one request, whoever runs it: a local ``imagegen batch`` or a fleet of workers.

A batch item's idempotency key is derived from what it asks for
(``imagegen._claims.request_fingerprint``: prompt, provider, size, options, input images by
content...) and from how many identical items came before it, never from a file name, a line
number or the way the batch is run. So the same prompts file run locally and on a fleet (with
the job store shared, e.g. ``[jobs] backend = "redis"`` on the fleet's Redis) names the same
requests, and each is paid for once: the second run finds the first one's jobs under those keys.
An item that carries its own ``idempotency_key`` keeps it (the caller named the request).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

from ._claims import request_fingerprint
from ._models import ImageRequest

__all__ = ["batch_key", "batch_keys"]


def batch_key(request: ImageRequest, occurrence: int = 1) -> str:
    """The idempotency key of the ``occurrence``-th item (1-based) asking for ``request`` in a batch."""
    digest = hashlib.sha256(f"{request_fingerprint(request)}#{occurrence}".encode()).hexdigest()
    return f"batch-{digest[:32]}"


def batch_keys(requests: Iterable[ImageRequest]) -> list[str]:
    """Every item's key, in order: its own if it has one, else `batch_key` with its occurrence, so two
    identical items are two requests (two images) and the same items in any order keep their keys."""
    seen: Counter[str] = Counter()
    keys = []
    for request in requests:
        if request.idempotency_key:
            keys.append(request.idempotency_key)
            continue
        fingerprint = request_fingerprint(request)
        seen[fingerprint] += 1
        keys.append(batch_key(request, seen[fingerprint]))
    return keys
