"""Following a vendor batch once it is sent: asking the vendor where it stands, recording each
member's outcome when it ends and settling its charge, and waiting for it (``AsyncClient``
mixes this in through ``VendorBatchCalls``).

A batch is asked about only while it is not over and settled; after that the job store answers.
Every member's charge has been on the ledger (at its batch-price estimate) since the vendor
accepted the batch; when the batch ends, each member's outcome is queued for its own job and its
charge settled to what the vendor reported, or voided for a member that failed -- through the
core's charge lifecycle, so a ledger that cannot take it sends it to the journal -- and the
batch record comes last. A process that dies half-way leaves work the next one redoes without
charging twice: a charge's identity is the member's job id and key.
"""

from __future__ import annotations

import asyncio
import time

from ._capabilities import ModelSpec
from ._charges import CallMoney
from ._errors import (
    ImageGenError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    ProviderError,
    ProviderUnavailableError,
    UnsupportedFeatureError,
)
from ._jobstore import put_job
from ._models import Cost, ImageRequest, ImageResult
from ._pipeline import CallPipeline
from ._polling import PollSchedule
from ._provider import Provider
from ._vendor_batch import (
    BatchJob,
    BatchMember,
    BatchResult,
    VendorBatchSnapshot,
    batch_status,
    member_record,
)

__all__ = ["BATCH_POLL_SCHEDULE", "VendorBatchFollowing"]

#: Looks at a vendor batch: soon at first (a small batch can be over in seconds), then at most a
#: minute apart (the target turnaround is 24 h).
BATCH_POLL_SCHEDULE = PollSchedule(initial=1.0, factor=1.5, cap=60.0)
#: Store-fault warnings a batch shows in full (a fault usually hits every member alike).
_WARNINGS_SHOWN = 3


class VendorBatchFollowing(CallPipeline):
    """Where a vendor batch stands, its outcomes, and waiting for it."""

    batch_poll_schedule: PollSchedule = BATCH_POLL_SCHEDULE

    # -- following a batch --------------------------------------------------------------------

    async def _batch_view(self, batch: BatchJob) -> BatchJob:
        """The batch as it stands: from the store once over, else asked of the vendor once."""
        if batch.done and batch.settled:
            return batch
        try:
            return await self._refresh(batch)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            # A failing batches.get (503/504) says nothing about the batch: report what is known.
            return batch.model_copy(update={"last_error": exc.message})

    async def _wait_batch(self, batch: BatchJob, timeout: float) -> BatchResult:
        deadline = time.monotonic() + timeout
        delays = self.batch_poll_schedule.delays()
        errors = 0
        while True:
            batch = await self._batch_view(batch)
            # A failing look (503/504) is ridden out for a while: the batch itself is unaffected.
            errors = 0 if batch.last_error is None else errors + 1
            if errors >= self.provider(batch.provider).max_poll_errors:
                raise _unreachable(batch)
            if batch.done and batch.settled:
                return self._result_of(batch)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobTimeoutError(
                    f"batch {batch.id} is still {batch.state} ({_counts(batch)}); vendor batches can take up to "
                    f"24 h: call wait({batch.id!r}) or status() again later, from any process",
                    provider=batch.provider, job_id=batch.id)
            await asyncio.sleep(min(next(delays), remaining))

    async def _refresh(self, batch: BatchJob) -> BatchJob:
        provider = self.provider(batch.provider)
        spec = self._batch_spec(provider, batch)
        api = getattr(provider, "vendor_batches", None)
        if api is None:
            raise UnsupportedFeatureError(f"provider {batch.provider} no longer offers vendor batches")
        snapshot: VendorBatchSnapshot = await self._guard(provider, api.poll(batch.native_id, spec))
        batch = batch.model_copy(update={"state": snapshot.state, "vendor_state": snapshot.vendor_state,
                                         "status": batch_status(snapshot.state), "last_error": None})
        if batch.done:
            return await self._finish(provider, spec, batch, snapshot)
        batch.members = [m.model_copy(update={"status": batch.status}) for m in batch.members]  # under way
        await put_job(self.jobs, batch.to_record())
        return batch

    async def _finish(self, provider: Provider, spec: ModelSpec, batch: BatchJob,
                      snapshot: VendorBatchSnapshot) -> BatchJob:
        """Record every member's outcome and settle its charge to the reported cost (or void it),
        then the batch record; a store fault is a warning on the batch (charges: journalled)."""
        outcomes = snapshot.outcomes or {}
        members, monies = [], []
        for member in batch.members:
            outcome = outcomes.get(member.key) or self._unanswered(batch, member, snapshot)
            money = self._member_money(provider, spec, member)
            if isinstance(outcome, ImageResult):
                result = outcome.model_copy(update={"job_id": member.job_id})
                member = member.model_copy(update={"status": "succeeded", "cost": result.cost, "error": None,
                                                   "result": result})
                self._store(money, member_record(batch, member, money.request).model_copy(update={"result": result}))
                self._charge(money, member.job_id, result.cost)
            else:
                cancelled = snapshot.state == "cancelled" and member.key not in outcomes
                member = member.model_copy(update={"status": "cancelled" if cancelled else "failed",
                                                   "error": outcome.to_dict(), "cost": Cost(usd=0.0, estimated=False)})
                self._store(money, member_record(batch, member, money.request))
                self._void(money, member.job_id)
                await self._release(money)
            members.append(member.model_copy(update={"reservation": None}))
            monies.append(money)
        batch = batch.model_copy(update={"members": members, "settled": True})
        self._store(monies[-1], batch.to_record())
        return batch.model_copy(update={"warnings": await self._flush_all(monies)})

    def _member_money(self, provider: Provider, spec: ModelSpec, member: BatchMember) -> CallMoney:
        """A member's charge lifecycle, resumed: its request from the store (its key is the
        charge's identity, with its job id)."""
        record = self.jobs.get(member.job_id)
        request = record.request if record is not None and record.request is not None else None
        if request is None:  # the member's record is gone (pruned): its key still names the charge
            request = ImageRequest.build(prompt="a batch member this job store no longer has",
                                         idempotency_key=member.key)
        estimate = member.cost if member.cost is not None and member.cost.estimated else Cost(estimated=True)
        money = CallMoney(provider, spec, request, estimate)
        money.reservation = member.reservation  # only batches sent before charges were recorded at acceptance
        return money

    async def _flush_all(self, monies: list[CallMoney]) -> list[str]:
        """Wait for the writes queued for every member (together: one store's wait, not one per
        member); the warnings of those that failed, said once each."""
        await asyncio.gather(*(self._flush(money) for money in monies))
        warnings = list(dict.fromkeys(w for money in monies for w in money.warnings))
        if len(warnings) > _WARNINGS_SHOWN:
            warnings = [*warnings[:_WARNINGS_SHOWN], f"... and {len(warnings) - _WARNINGS_SHOWN} more like them"]
        return warnings

    @staticmethod
    def _unanswered(batch: BatchJob, member: BatchMember, snapshot: VendorBatchSnapshot) -> ImageGenError:
        why = {"expired": "the batch expired (its 24 h window ran out) before this member was answered",
               "cancelled": "the batch was cancelled before this member was answered",
               "failed": f"the batch failed: {snapshot.message or 'no reason given'}"}.get(
            batch.state, "the vendor returned no answer for this member")
        return JobFailedError(f"member {member.key!r} of batch {batch.id}: {why}; resubmit it with "
                              f"resubmit_batch({batch.id!r}, keys=[{member.key!r}])", provider=batch.provider)

    def _result_of(self, batch: BatchJob) -> BatchResult:
        members = []
        for member in batch.members:
            if member.result is None:  # finished earlier: its own job holds its result
                record = self.jobs.get(member.job_id)
                member = member.model_copy(update={"result": record.result if record is not None else None})
            members.append(member)
        results = [m.result for m in members if m.result is not None]
        cost = sum((r.cost for r in results), Cost(usd=0.0, estimated=False))
        failed = [m for m in members if m.status != "succeeded"]
        warnings = [f"{len(failed)} of {len(members)} member(s) did not succeed: "
                    + ", ".join(m.key for m in failed[:10])] if failed else []
        return BatchResult(images=[image for r in results for image in r.images], provider=batch.provider,
                           model=batch.model or "", job_id=batch.id, cost=cost, warnings=[*warnings, *batch.warnings],
                           batch_id=batch.id, state=batch.state, members=members)

    def _stored_batch(self, batch_id: str) -> BatchJob:

        stored = self.jobs.get(batch_id)
        if not BatchJob.is_record(stored):
            raise JobNotFoundError(f"no batch {batch_id!r} in the job store (jobs.backend / jobs.path in the config)")
        return BatchJob.from_record(stored)  # type: ignore[arg-type]

    def _batch_spec(self, provider: Provider, batch: BatchJob) -> ModelSpec:
        from ._routing import Target

        return self._model(provider, Target(provider.instance_name, batch.model), ImageRequest.build(prompt="-"))


def _counts(batch: BatchJob) -> str:
    done = sum(1 for m in batch.members if m.status in ("succeeded", "failed", "cancelled"))
    return f"{done} of {len(batch.members)} member(s) done"


def _unreachable(batch: BatchJob) -> ProviderError:

    return ProviderUnavailableError(
        f"batch {batch.id}: asking for its state keeps failing ({batch.last_error}). Large inline image "
        "batches are known to make batches.get fail with 503/504 for days; the batch may still finish: "
        f"call wait({batch.id!r}) later, or cancel it and resubmit with delivery=\"file\"",
        provider=batch.provider)

