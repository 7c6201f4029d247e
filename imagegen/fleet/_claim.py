"""The one place a fleet worker runs a request it may pay for: under its idempotency claim.

The stream already hands each prompt to one worker at a time (and ``_lease`` keeps a slow
worker's prompts its own, and stops a worker that lost one from sending it); the claim covers
what the stream cannot: the same request in two batches at once. The claim is the job
store's own (``imagegen._claims``, issue 13): ``generate`` with a caller's idempotency key holds
the key in the job store — the fleet's Redis, for a worker — renewing its lease while it runs;
another worker with the same key waits for that outcome instead of paying; a dead holder's
claim is taken over (at once on the same host, after its lease elsewhere), and the new holder
resumes the job the dead one left in the job store (or, for Wireflow, the vendor replays the
execution under the same ``Idempotency-Key``) instead of paying again.
"""

from __future__ import annotations

from typing import Any

from .._models import ImageRequest, ImageResult

__all__ = ["run_claimed"]


async def run_claimed(client: Any, request: ImageRequest) -> ImageResult:
    """Run ``request`` (which carries its item key) at most once across the fleet."""
    assert request.idempotency_key is not None, "fleet requests always carry their item key"
    result: ImageResult = await client.generate(request)
    return result
