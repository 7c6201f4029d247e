"""Cassettes of vendor batches and edit sessions: recording them, and replaying them in ``bench``.

A cassette's ``kind`` (in its imagegen metadata) says how its requests were made:

- ``calls``: each request through ``generate`` (the default);
- ``vendor_batch``: all of them as one ``submit_batch``, then ``wait``. ``imagegen bench`` shows a
  batch row per provider/model (``<model> (vendor batch)``) next to the standard one, so the cost
  per image of the two can be compared;
- ``session``: the requests are the turns of one edit session (the first a ``generate``, the
  others ``edit``), replayed through ``Client.session``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ImageGenError
from .._models import ImageRequest, ImageResult

if TYPE_CHECKING:  # pragma: no cover
    from ._bench import CallSample
    from ._record import RecordingClient
    from ._replay import Replay

__all__ = ["BATCH_LABEL", "RecordingSession", "record_batch", "replay_batch", "replay_session"]

#: Appended to the model of a vendor batch's bench rows.
BATCH_LABEL = " (vendor batch)"


def _outcome(result: ImageResult) -> dict[str, Any]:
    return {"outcome": "ImageResult", "latency_s": result.latency_s, "provider": result.provider,
            "model": result.model, "images": len(result.images),
            "cost": result.cost.model_dump(mode="json", include={"usd", "credits", "estimated"})}


def record_batch(recorder: RecordingClient, requests: list[ImageRequest | str], *, provider: str | None = None,
                 timeout: float = 600.0, **options: Any) -> Any:
    """``submit_batch`` then ``wait``, noting the requests (with their provider) for the cassette."""
    items = [r if isinstance(r, ImageRequest) else ImageRequest.build(prompt=r) for r in requests]
    # Keys fixed now and recorded: the answers are matched to requests by key on replay too.
    items = [r.model_copy(update={"provider": r.provider or provider,
                                  "idempotency_key": r.idempotency_key or uuid.uuid4().hex}) for r in items]
    recorder.kind = "vendor_batch"
    recorder.requests.extend(items)
    batch = recorder.client.submit_batch(items, **options)
    result = recorder.client.wait(batch.id, timeout=timeout)
    for member in result.members:
        recorder.outcomes.append(_outcome(member.result) if member.result is not None else
                                 {"outcome": (member.error or {}).get("type", "ProviderError"), "latency_s": 0.0})
    return result


class RecordingSession:
    """A ``Client.session`` whose turns are noted for the cassette."""

    def __init__(self, recorder: RecordingClient, provider: str | None) -> None:
        recorder.kind = "session"
        self._recorder = recorder
        self._provider = provider
        self.session = recorder.client.session(provider)

    def generate(self, prompt: str, **options: Any) -> ImageResult:
        return self._turn(ImageRequest.build(prompt=prompt, provider=self._provider, **options),
                          lambda: self.session.generate(prompt, **options))

    def edit(self, prompt: str, *, images: Any = None, **options: Any) -> ImageResult:
        request = ImageRequest.build(prompt=prompt, operation="edit", provider=self._provider, images=images or [],
                                     **options)
        return self._turn(request, lambda: self.session.edit(prompt, images=images, **options))

    def _turn(self, request: ImageRequest, call: Any) -> ImageResult:
        self._recorder.requests.append(request)
        result: ImageResult = call()
        self._recorder.outcomes.append(_outcome(result))
        return result


async def replay_batch(client: Any, replay: Replay, path: Path) -> list[CallSample]:
    """A vendor batch cassette: one sample per member, in a ``(vendor batch)`` row."""
    from ._bench import CallSample

    requests = replay.requests
    estimate = await client.estimate_batch(requests)
    replay.clock.reset()
    started = time.perf_counter()
    batch = await client.submit_batch(requests)
    result = await client.wait(batch.id, timeout=3600.0)
    wall = time.perf_counter() - started
    share = (estimate.batch.usd or 0.0) / max(1, estimate.members)
    # The batch's calls (create, upload, polls, download) are shared by its members.
    count = max(1, len(result.members))
    samples = []
    for member in result.members:
        ok = member.result is not None
        samples.append(CallSample(
            cassette=str(path), provider=result.provider, model=f"{result.model}{BATCH_LABEL}",
            outcome="ImageResult" if ok else str((member.error or {}).get("type")), succeeded=ok, fell_back=False,
            latency_s=replay.to_real_seconds(wall, replay.clock.slept_s), recorded_latency_s=None, polls=0,
            requests=round(replay.clock.requests / count), bytes=replay.bytes_of(replay.played()) // count,
            estimated_usd=share,
            actual_usd=member.result.cost.usd / max(1, len(member.result.images))
            if member.result is not None and member.result.cost.usd is not None else None,
            images=len(member.result.images) if member.result is not None else 0))
    return samples


async def replay_session(client: Any, replay: Replay, path: Path) -> list[CallSample]:
    """An edit session cassette: its turns through ``session``, one sample per turn."""
    from ._bench import CallSample

    requests = replay.requests
    session = client.session(requests[0].provider if requests else None)
    samples = []
    for request in requests:
        estimate = await client.estimate(request) if request.operation == "generate" else None
        before = replay.played()
        replay.clock.reset()
        started = time.perf_counter()
        try:
            if request.operation == "edit":
                outcome: ImageResult | ImageGenError = await session.edit(request.prompt, images=request.images or None)
            else:
                outcome = await session.generate(request.prompt)
        except ImageGenError as exc:
            outcome = exc
        ok = isinstance(outcome, ImageResult)
        samples.append(CallSample(
            cassette=str(path), provider=session.provider, model=session.model,
            outcome="ImageResult" if ok else type(outcome).__name__, succeeded=ok, fell_back=False,
            latency_s=replay.to_real_seconds(time.perf_counter() - started, replay.clock.slept_s),
            recorded_latency_s=None, polls=0, requests=replay.clock.requests,
            bytes=replay.bytes_of(replay.played() - before), estimated_usd=estimate.usd if estimate else None,
            actual_usd=outcome.cost.usd if isinstance(outcome, ImageResult) else None,
            images=len(outcome.images) if isinstance(outcome, ImageResult) else 0))
    return samples
