"""``submit_batch`` and the vendor-batch side of ``status``, ``wait`` and ``cancel``.

Money follows the core's one charge lifecycle (``imagegen._charges``), per member: every
member's batch-price estimate is reserved against the budgets before anything is sent (all or
none); the moment the vendor has accepted the batch, every member's job and its charge (the
estimate, at the batch price) are queued on the stores, then the batch record, before the call
returns -- so a batch nobody waits on is on the ledger and counts against the budgets like any
other spending, and a store that fails then costs a warning (the charge goes to the journal),
never the batch. When the batch ends, whoever looks first (``status``/``wait``, any process)
settles each member's charge to what the vendor reported, or voids it for a member that
failed (``_vendor_batch_follow``). Charges are identified by member job id and key, so two
processes finishing one batch charge it once. ``AsyncClient`` mixes this in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from ._charges import CallMoney
from ._claims import holder_is_dead, new_owner, request_fingerprint
from ._errors import (
    ImageGenError,
    InvalidRequestError,
    InvalidResponseError,
    ProviderUnavailableError,
    UnsupportedFeatureError,
)
from ._jobstore import put_job
from ._models import Cost, ImageRequest, ImageResult, Job, make_job_id
from ._pipeline import DEFAULT_CALL_TIMEOUT_S
from ._sqlite import waits_until
from ._vendor_batch import (
    BatchEstimate,
    BatchJob,
    BatchMember,
    Delivery,
    VendorBatchAPI,
    VendorBatchSnapshot,
    batch_id_of_member,
    batch_status,
    error_from_dict,
    member_job_id,
    member_record,
    unique_keys,
)
from ._vendor_batch_follow import VendorBatchFollowing

if TYPE_CHECKING:  # pragma: no cover
    from ._capabilities import ModelSpec
    from ._plugins import PluginRegistry
    from ._provider import Provider

__all__ = ["VendorBatchCalls"]

Fallback = Literal["error", "concurrent"]

log = logging.getLogger("imagegen")

#: How long to look for a batch whose create answer was lost before giving up on it.
_FIND_TIMEOUT_S = 60.0


class VendorBatchCalls(VendorBatchFollowing):
    """The vendor-batch calls of ``AsyncClient`` (which provides the attributes used here)."""

    registry: PluginRegistry

    def _plugin_of(self, name: str) -> type[Provider]:  # pragma: no cover - provided by AsyncClient
        raise NotImplementedError

    async def generate_many(self, requests: Iterable[ImageRequest | str], *,
                            concurrency: int = 4) -> list[ImageResult | ImageGenError]:  # pragma: no cover
        raise NotImplementedError

    # -- public ------------------------------------------------------------------------------

    async def submit_batch(self, requests: Iterable[ImageRequest | str], *, provider: str | None = None,
                           display_name: str | None = None, delivery: Delivery | Literal["auto"] = "auto",
                           fallback: Fallback = "error", concurrency: int = 4) -> BatchJob:
        """Send ``requests`` as one vendor batch (Gemini's Batch API: half price, up to 24 h) and
        return its handle at once; ``status``/``wait`` take its id (or a member's) from any process.

        ``delivery``: ``"auto"`` (inline while small, else an uploaded file), ``"inline"``,
        ``"file"``, or ``"concurrent"`` (standard calls now, at the standard price). A provider
        without a vendor batch is an `UnsupportedFeatureError` naming those that have one, unless
        ``fallback="concurrent"``.
        """
        items = self._batch_requests(requests, provider)
        target, spec = self._batch_target(items)
        api = self._vendor_api(target, spec)
        if delivery == "concurrent" or api is None:
            if delivery != "concurrent" and fallback != "concurrent":
                raise self._no_vendor_batch(target, spec)
            return await self._run_concurrently(items, target, spec, concurrency=concurrency)
        members = self._expand(items)
        deadline = time.monotonic() + DEFAULT_CALL_TIMEOUT_S
        with waits_until(deadline):
            async with _claimed(self.jobs, members) as completed:
                self._check_not_submitted(members)
                batch = await self._send(target, spec, api, members, deadline, display_name=display_name,
                                         delivery=delivery)
                completed.update({m.key: [m.job_id] for m in batch.members})
        return batch

    async def estimate_batch(self, requests: Iterable[ImageRequest | str], *,
                             provider: str | None = None) -> BatchEstimate:
        """The batch price of ``requests`` next to their standard price; no network call."""
        items = self._batch_requests(requests, provider)
        target, spec = self._batch_target(items)
        api = self._vendor_api(target, spec)
        if api is None:
            raise self._no_vendor_batch(target, spec)
        return self._estimate(target, spec, [r for _, r in self._expand(items)], api)

    async def resubmit_batch(self, batch_id: str, *, keys: Iterable[str] | None = None,
                             delivery: Delivery | Literal["auto"] = "auto") -> BatchJob:
        """Send members of a finished batch again, as a new batch: the ``keys`` given, or every
        member that did not succeed. ``delivery="concurrent"`` sends them as standard calls."""
        batch = await self._batch_view(self._stored_batch(batch_id))
        if not batch.done:
            raise InvalidRequestError(f"batch {batch_id} is still {batch.state}; wait for it before resubmitting")
        wanted = set(keys) if keys is not None else {m.key for m in batch.failed}
        unknown = wanted - {m.key for m in batch.members}
        if unknown:
            raise InvalidRequestError(f"batch {batch_id} has no member(s) {', '.join(sorted(unknown))}")
        chosen = [m for m in batch.members if m.key in wanted]
        if not chosen:
            raise InvalidRequestError(f"every member of batch {batch_id} succeeded; nothing to resubmit")
        requests = [self._member_request(m) for m in chosen]
        return await self.submit_batch(requests, provider=f"{batch.provider}/{batch.model}", delivery=delivery,
                                       fallback="concurrent")

    # -- hooks for status / wait / cancel -----------------------------------------------------

    def _batch_of(self, stored: Job | None) -> BatchJob | None:
        """The batch ``stored`` is, or belongs to (None: an ordinary job)."""
        if BatchJob.is_record(stored):
            return BatchJob.from_record(stored)  # type: ignore[arg-type]
        parent = batch_id_of_member(stored)
        return self._stored_batch(parent) if parent else None

    async def _batch_status(self, stored: Job) -> Job:
        batch = await self._batch_view(self._batch_of(stored))  # type: ignore[arg-type]
        return batch if stored.id == batch.id else self.jobs.get(stored.id) or stored

    async def _batch_wait(self, stored: Job, timeout: float) -> ImageResult:
        batch = self._batch_of(stored)
        assert batch is not None
        result = await self._wait_batch(batch, timeout)
        if stored.id == batch.id:
            return result
        member = next(m for m in result.members if m.job_id == stored.id)
        if member.result is None:
            raise error_from_dict(member.error or {})
        return member.result

    async def _batch_cancel(self, stored: Job) -> Job:
        batch = self._batch_of(stored)
        assert batch is not None
        provider = self.provider(batch.provider)
        api = getattr(provider, "vendor_batches", None)
        if api is None or batch.delivery == "concurrent":
            raise UnsupportedFeatureError(f"batch {batch.id} ran as standard calls; there is nothing to cancel")
        await self._guard(provider, api.cancel(batch.native_id))
        return await self._batch_view(batch)

    # -- building a batch ---------------------------------------------------------------------

    def _batch_requests(self, requests: Iterable[ImageRequest | str], provider: str | None) -> list[ImageRequest]:
        items = []
        for item in requests:
            request = item if isinstance(item, ImageRequest) else ImageRequest.build(prompt=item)
            if provider is not None and request.provider is None:
                request = request.model_copy(update={"provider": provider})
            items.append(request)
        if not items:
            raise InvalidRequestError("a batch needs at least one request")
        return items

    def _batch_target(self, items: list[ImageRequest]) -> tuple[Provider, ModelSpec]:
        chosen: tuple[str, str] | None = None
        for request in items:
            target = self._plan(request).targets[0]
            provider = self.provider(target.provider)
            spec = self._model(provider, target, request)
            if chosen is not None and chosen != (target.provider, spec.id):
                raise InvalidRequestError(
                    f"one batch goes to one provider and model; got {chosen[0]}/{chosen[1]} and "
                    f"{target.provider}/{spec.id}: submit one batch per model")
            chosen = (target.provider, spec.id)
        return provider, spec

    def _vendor_api(self, provider: Provider, spec: ModelSpec) -> VendorBatchAPI | None:
        api = getattr(provider, "vendor_batches", None)
        return api if api is not None and spec.vendor_batch else None

    def _no_vendor_batch(self, provider: Provider, spec: ModelSpec) -> UnsupportedFeatureError:
        offering = []
        for name in sorted(set(self.config.providers) | set(self.registry.providers())):
            try:
                cls = self._plugin_of(name)
            except ImageGenError:
                continue
            offering += [f"{name}/{s.id}" for s in cls.models() if s.vendor_batch] \
                if getattr(cls, "vendor_batches", None) is not None else []
        where = ", ".join(offering) or "none installed"
        return UnsupportedFeatureError(
            f"{provider.instance_name}/{spec.id} has no vendor batch API; models that have one: {where}. "
            "Or pass fallback=\"concurrent\" to send the requests as standard calls (standard price)")

    def _expand(self, items: list[ImageRequest]) -> list[tuple[str, ImageRequest]]:
        """One member per image: ``n`` > 1 is split, as the Batch API makes one image per request."""
        members = []
        for request in items:
            key = request.idempotency_key or uuid.uuid4().hex
            for i in range(request.n):
                sub = f"{key}.{i}" if i else key
                members.append((sub, request.model_copy(update={"n": 1, "idempotency_key": sub})))
        unique_keys(k for k, _ in members)
        return members

    def _check_not_submitted(self, members: list[tuple[str, ImageRequest]]) -> None:
        for key, _ in members:
            earlier = self.jobs.find(key)
            if earlier is not None and earlier.status not in ("failed", "cancelled"):
                raise InvalidRequestError(
                    f"a request with key {key!r} was already submitted as job {earlier.id} ({earlier.status}); "
                    "wait() for it instead of paying twice, or give the request a new idempotency_key")

    def _estimate(self, provider: Provider, spec: ModelSpec, requests: list[ImageRequest],
                  api: VendorBatchAPI | None) -> BatchEstimate:
        standard = Cost(usd=0.0, estimated=True)
        for request in requests:
            provider.validate(request, spec)
            standard = standard + provider.estimate(request, spec)
        discount = spec.price.batch_discount if spec.price and spec.price.batch_discount else 1.0
        return BatchEstimate(provider=provider.instance_name, model=spec.id, members=len(requests), standard=standard,
                             batch=_discounted(standard, discount), discount=discount,
                             delivery=api.delivery(requests, spec) if api is not None else "concurrent")

    async def _send(self, provider: Provider, spec: ModelSpec, api: VendorBatchAPI,
                    members: list[tuple[str, ImageRequest]], deadline: float, *, display_name: str | None,
                    delivery: Delivery | Literal["auto"]) -> BatchJob:
        """Reserve, send, and record the batch the moment the vendor has accepted it."""
        estimate = self._estimate(provider, spec, [r for _, r in members], api)
        monies = [CallMoney(provider, spec, request, _discounted(provider.estimate(request, spec), estimate.discount))
                  for _, request in members]
        await self._hold_budgets(monies, deadline)
        name = display_name or f"imagegen-{uuid.uuid4().hex[:12]}"
        sent_at = time.time()
        notes = []
        try:
            native_id, used = await self._guard(provider, api.create(members, spec, display_name=name,
                                                                     delivery=delivery))
        except BaseException as exc:
            found = await self._sent_anyway(provider, spec, api, exc, name, len(members), sent_at)
            if found is None:
                await asyncio.gather(*(self._release(m) for m in monies))
                raise
            native_id, used = found, delivery if delivery != "auto" else api.delivery([r for _, r in members], spec)
            notes.append(f"the answer to the batch's create call was lost ({exc}); {provider.instance_name} had "
                         f"the batch all the same: it is followed as {native_id}, not sent (and paid for) again")
        batch = BatchJob(id=make_job_id(provider.instance_name, native_id), provider=provider.instance_name,
                         native_id=native_id, status="queued", model=spec.id, delivery=used, display_name=name,
                         estimate=estimate.model_copy(update={"delivery": used}))
        batch.members = [BatchMember(index=i, key=key, cost=money.estimate,
                                     job_id=member_job_id(provider.instance_name, native_id, i))
                         for i, ((key, _), money) in enumerate(zip(members, monies, strict=True))]
        batch.warnings = [*notes, *await self._accepted(batch, monies)]
        return batch

    async def _sent_anyway(self, provider: Provider, spec: ModelSpec, api: VendorBatchAPI, failure: BaseException,
                           display_name: str, count: int, sent_at: float) -> str | None:
        """After a create call that failed in a way that may have come after the vendor took the
        batch (the connection cut, a timeout, an unreadable answer), the batch the vendor has
        under our display name (found with the provider's ``find``), if any: following it
        beats paying for the same requests twice. A look that fails itself finds nothing."""
        find = getattr(api, "find", None)
        if find is None or not isinstance(failure, (ProviderUnavailableError, InvalidResponseError)):
            return None
        try:
            async with asyncio.timeout(_FIND_TIMEOUT_S):
                found: str | None = await self._guard(provider, find(display_name, spec, requests=count,
                                                                     since=sent_at))
        except (ImageGenError, TimeoutError) as exc:
            log.warning("imagegen could not check whether %s took batch %r after its create call failed: %s",
                        provider.instance_name, display_name, exc)
            return None
        return found

    async def _hold_budgets(self, monies: list[CallMoney], deadline: float) -> None:
        """Reserve every member's share before anything is sent: all of them or none."""
        try:
            for money in monies:
                await self._hold_budget(money, deadline)
        except BaseException:
            await asyncio.gather(*(self._release(m) for m in monies))
            raise

    async def _accepted(self, batch: BatchJob, monies: list[CallMoney]) -> list[str]:
        """The vendor has the batch: queue every member's job and charge (members first, the
        writer keeps the order: a batch record never names a member the store lacks), then the
        batch record, and wait for them; a store fault is a warning, never a lost batch."""
        for member, money in zip(batch.members, monies, strict=True):
            self._accept(money, member_record(batch, member, money.request))
        self._store(monies[-1], batch.to_record())
        return await self._flush_all(monies)

    async def _record(self, batch: BatchJob, requests: list[ImageRequest]) -> None:
        writes = [put_job(self.jobs, member_record(batch, member, request))
                  for member, request in zip(batch.members, requests, strict=True)]
        writes.append(put_job(self.jobs, batch.to_record()))
        await asyncio.gather(*writes)

    async def _run_concurrently(self, items: list[ImageRequest], provider: Provider, spec: ModelSpec, *,
                                concurrency: int) -> BatchJob:
        """The fallback: standard calls now, recorded as a batch so the handle works the same."""
        members = self._expand(items)
        outcomes = await self.generate_many([r for _, r in members], concurrency=concurrency)
        native_id = f"local-{uuid.uuid4().hex[:16]}"
        batch = BatchJob(id=make_job_id(provider.instance_name, native_id), provider=provider.instance_name,
                         native_id=native_id, status="queued", model=spec.id, delivery="concurrent",
                         estimate=self._estimate(provider, spec, [r for _, r in members], None))
        batch.members = [BatchMember(index=i, key=key, job_id=member_job_id(provider.instance_name, native_id, i))
                         for i, (key, _) in enumerate(members)]
        answers = {key: outcome for (key, _), outcome in zip(members, outcomes, strict=True)}
        snapshot = VendorBatchSnapshot(state="succeeded", vendor_state="CONCURRENT", outcomes=answers)
        await self._record(batch, [r for _, r in members])
        # Each call was charged by its own pipeline run; the batch only records the outcomes.
        finished = await self._finish_local(batch, snapshot)
        await put_job(self.jobs, finished.to_record())
        return finished

    async def _finish_local(self, batch: BatchJob, snapshot: VendorBatchSnapshot) -> BatchJob:
        members = []
        for member in batch.members:
            outcome = (snapshot.outcomes or {})[member.key]
            record = self.jobs.get(member.job_id)
            request = record.request if record is not None else None
            if isinstance(outcome, ImageResult):
                member = member.model_copy(update={"status": "succeeded", "cost": outcome.cost})
                await put_job(self.jobs, member_record(batch, member, request).model_copy(update={"result": outcome}))
            else:
                member = member.model_copy(update={"status": "failed", "error": outcome.to_dict()})
                await put_job(self.jobs, member_record(batch, member, request))
            members.append(member)
        state = "succeeded" if any(m.status == "succeeded" for m in members) else "failed"
        return batch.model_copy(update={"members": members, "settled": True, "state": state,
                                        "status": batch_status(state), "vendor_state": "CONCURRENT"})

    # -- small lookups ------------------------------------------------------------------------

    def _member_request(self, member: BatchMember) -> ImageRequest:
        record = self.jobs.get(member.job_id)
        if record is None or record.request is None:
            raise InvalidRequestError(f"member {member.key!r}: its request is not in the job store")
        return record.request

def _discounted(standard: Cost, discount: float) -> Cost:
    """The batch price of what costs ``standard`` as standard calls (an estimate)."""
    return Cost(usd=None if standard.usd is None else round(standard.usd * discount, 9), estimated=True,
                breakdown={k: round(v * discount, 9) for k, v in standard.breakdown.items()})


#: How long a batch holds its members' idempotency keys while it is sent: an upload and the create
#: call of a large batch can take minutes.
BATCH_CLAIM_LEASE_S = 900.0


@contextlib.asynccontextmanager
async def _claimed(store: Any, members: list[tuple[str, ImageRequest]]) -> AsyncIterator[dict[str, list[str]]]:
    """Hold every member's idempotency key while the batch is sent (the job store's claims), so two
    processes sending the same requests cannot both pay; keys the block completes (with their job
    ids) end completed, the others are released."""
    owner = new_owner()
    held: list[str] = []
    completed: dict[str, list[str]] = {}
    try:
        for key, request in members:
            fingerprint = request_fingerprint(request)
            claim = await asyncio.to_thread(store.claim, key, fingerprint, owner, BATCH_CLAIM_LEASE_S)
            if not claim.acquired and holder_is_dead(claim.holder):
                claim = await asyncio.to_thread(functools.partial(
                    store.claim, key, fingerprint, owner, BATCH_CLAIM_LEASE_S, take_over=claim.holder))
            if not claim.acquired:
                raise InvalidRequestError(
                    f"another call is sending the request with key {key!r} right now; wait for it (its job "
                    "appears under that key) instead of sending it again")
            held.append(key)
        yield completed
    finally:
        for key in held:
            end = functools.partial(store.complete_claim, key, owner, completed[key]) if key in completed \
                else functools.partial(store.release_claim, key, owner)
            await asyncio.shield(asyncio.to_thread(end))
