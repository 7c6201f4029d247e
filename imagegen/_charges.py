"""The charge lifecycle: one mechanism, in the core, for every entry point that can spend money.

``generate``, ``edit``, ``generate_many`` (and so ``imagegen batch``), ``submit``, ``status`` and
``wait`` all take the same steps:

1. **reserve** the estimate against the budgets before anything is sent (``BudgetExceededError``;
   a store that cannot be used is ``StorageError``: nothing has been paid yet);
2. **send**;
3. **accepted**: the moment the vendor has taken billable work -- a submit answered, a
   synchronous answer received, a finished job's outputs announced (``CallScope.on_outputs``)
   -- the job's write and the charge's (at the estimate) are queued on the stores (their writer
   threads take them in that order), before any download, decode, cache or result write that
   could fail; the call waits for them before it returns;
4. **outputs fetched and fully decoded** (``imagegen._outputs``);
5. **settled**: the charge becomes the cost the vendor reported, and the finished job (with its
   images) is stored.

A billed request answered 2xx counts as step 3 even when the answer never arrives whole
(``imagegen._answers``): its charge is recorded at the estimate and the caller gets
``AnswerLostError``, never a second, paid send.

After step 3 nothing is ever submitted again: a failure to fetch or decode the outputs is
``OutputUnavailableError`` (the job stays in the store, finished, with its output URLs, and
``wait(job_id)`` fetches them later), a job the vendor failed has its charge voided, and any
other failure leaves job and charge on record for a later ``wait``. A store that cannot be
written after step 3 never costs the caller the result: it is returned with a warning naming
the fault, and a charge the ledger could not take goes to the journal (``imagegen._journal``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any, TypeVar

from ._answers import AnswerWatch
from ._errors import (
    AnswerLostError,
    ImageGenError,
    InvalidResponseError,
    JobFailedError,
    JobNotFoundError,
    JobTimeoutError,
    OutputUnavailableError,
    StorageError,
)
from ._http import CallScope, call_scope
from ._ids import new_id
from ._jobstore import put_job
from ._models import Cost, ImageRequest, ImageResult, Job, split_job_id
from ._outputs import check_decodes
from ._sqlite import wait_left
from ._storage import describe_fault, translated

if TYPE_CHECKING:  # pragma: no cover
    from ._capabilities import ModelSpec
    from ._jobstore import JobStore
    from ._journal import ChargeJournal
    from ._ledger import BudgetLimits, Ledger, RedisLedger
    from ._provider import Provider

__all__ = ["AFTER_PAYMENT_WAIT_S", "CallMoney", "ChargeLifecycle", "answer_lost_again"]

log = logging.getLogger("imagegen")

#: After the vendor has billed, a store write waits this long at most for another process's lock
#: (and a quarter of the time the call has left at most); longer is a fault, reported as a warning
#: (a charge goes to the journal), never a lost result, and never the time to fetch the result.
AFTER_PAYMENT_WAIT_S = 2.0


T = TypeVar("T")


@dataclass
class _Pending:
    """A store write queued after payment: awaited before the call returns, ``on_fault`` if it fails."""

    done: asyncio.Future[Any]
    on_fault: Callable[[BaseException], None]


@dataclass
class CallMoney:
    """One provider call's money and records, from reservation to settlement."""

    provider: Provider
    spec: ModelSpec
    request: ImageRequest
    estimate: Cost
    reservation: str | None = None
    #: The job the reservation became the charge of (a reservation pays for one job).
    reserved_for: str | None = None
    accepted: dict[str, Job] = field(default_factory=dict)
    #: job id -> (usd, estimated) last written for it, so an unchanged charge is not written again.
    recorded: dict[str | None, tuple[float, bool]] = field(default_factory=dict)
    pending: list[_Pending] = field(default_factory=list)
    #: The last ledger write queued, for stores without a writer thread (their writes run in order).
    last_ledger_write: asyncio.Future[Any] | None = None
    warnings: list[str] = field(default_factory=list)
    #: The 2xx answers to billed requests this call has had (``imagegen._answers``).
    answers: AnswerWatch = field(default_factory=AnswerWatch)

    @property
    def key(self) -> str | None:
        return self.request.idempotency_key


class ChargeLifecycle:
    """The steps above, mixed into ``CallPipeline`` (which owns the stores)."""

    jobs: JobStore
    ledger: Ledger | RedisLedger | None
    journal: ChargeJournal | None
    _limits: BudgetLimits
    _job_writes: dict[str, asyncio.Future[Any]]
    _background: set[asyncio.Future[Any]]

    def _in_background(self, work: Any) -> asyncio.Task[Any]:  # pragma: no cover - CallPipeline's
        raise NotImplementedError

    def _queued(self, write: Awaitable[Any]) -> asyncio.Future[Any]:
        """A queued store write's future (a writer thread's own future as it is: no task per
        write), kept until it lands so that ``aclose()`` waits for it. Its fault is the queuing
        call's to report (``_flush``), not a log line."""
        written = write if isinstance(write, asyncio.Future) else asyncio.ensure_future(write)
        self._background.add(written)
        written.add_done_callback(self._write_landed)
        return written

    def _write_landed(self, written: asyncio.Future[Any]) -> None:
        self._background.discard(written)
        if not written.cancelled():
            written.exception()  # retrieved: reported by the call that queued it

    # -- 1. reserve --------------------------------------------------------------------------

    def _money(self, provider: Provider, spec: ModelSpec, request: ImageRequest) -> CallMoney:
        return CallMoney(provider, spec, request, provider.estimate(request, spec))

    def _paid_scope(self, money: CallMoney, deadline: float) -> CallScope:
        """The HTTP context of a call that can spend money: its deadline, the outputs it announces,
        the billed answers it gets."""
        return CallScope(deadline, self._outputs_announced(money), money.answers)

    async def _hold_budget(self, money: CallMoney, deadline: float) -> None:
        """Hold the estimate against the budgets before anything is sent (``BudgetExceededError``;
        ``StorageError`` when the ledger cannot take it before the deadline)."""
        ledger, limits = self.ledger, self._limits
        if ledger is None or (limits.daily_usd is None and limits.monthly_usd is None and limits.total_usd is None):
            return  # no budget: nothing to hold (and no calendar arithmetic per call to find that out)
        reserve: dict[str, Any] = {"provider": money.provider.instance_name, "model": money.spec.id,
                                   "usd": money.estimate.usd or 0.0, "limits": self._limits}
        asubmit = getattr(ledger, "asubmit_reserve", None)
        # A writer's own future (SQLite) is awaited as it is: no task, shield and timer per call.
        task = (self._queued(asubmit(**reserve)) if asubmit is not None
                else self._in_background(ledger.areserve(**reserve)))
        try:
            done, _ = await asyncio.wait([task], timeout=max(0.05, deadline - time.monotonic()))
        except asyncio.CancelledError:  # the reservation is still made: it must not count
            task.add_done_callback(self._release_late)
            raise
        if not done:
            task.add_done_callback(self._release_late)
            raise StorageError("the ledger did not take this call's budget reservation before its deadline (another "
                               "process holds its write lock?); nothing was sent", store="ledger") from None
        with translated("ledger", "write"):
            money.reservation = task.result()

    def _release_late(self, task: asyncio.Future[Any]) -> None:
        """A reservation made after its caller gave up: it must not count against the budget."""
        if self.ledger is None or task.cancelled() or task.exception() is not None:
            return
        submit = getattr(self.ledger, "submit_release", None)
        if submit is not None:
            submit(task.result())  # queued on the writer, which commits it even at exit
        else:
            self._in_background(self.ledger.arelease(task.result()))

    async def _release(self, money: CallMoney) -> None:
        if money.reservation is not None and money.reserved_for is None and self.ledger is not None:
            try:
                await self.ledger.arelease(money.reservation)
            except StorageError as exc:  # it stops counting by itself (an hour; Redis: its period)
                log.warning("imagegen could not release a budget reservation: %s", exc.message)

    # -- 3. accepted -------------------------------------------------------------------------

    def _accept(self, money: CallMoney, job: Job) -> None:
        """The vendor took billable work: the job's and the charge's writes are queued now, in
        this order, before the provider goes on to wait or download (the call awaits them)."""
        job = job.model_copy(update={"request": job.request or money.request, "model": job.model or money.spec.id})
        known = money.accepted.get(job.id)
        money.accepted[job.id] = job
        result = job.result
        if known is None or known.status != job.status or result is not None:
            self._store(money, job)
        self._charge(money, job.id, result.cost if result is not None and not result.cost.estimated
                     else money.estimate)

    def _outputs_announced(self, money: CallMoney) -> Any:
        def announced(job_id: str, urls: list[str]) -> None:
            if job_id in money.accepted and money.accepted[job_id].done:
                return
            name, native = split_job_id(job_id)
            self._accept(money, Job(id=job_id, provider=name, native_id=native, status="succeeded",
                                    metadata={"output_urls": urls, "outputs_fetched": False}))
        return announced

    def _store(self, money: CallMoney, job: Job) -> None:
        """Queue the job's write (a SQLite job store takes it in call order on its writer thread)."""
        try:
            written = self._queued(put_job(self.jobs, job))
        except StorageError as exc:
            money.warnings.append(_unstored(job.id, exc))
            return
        self._job_writes[job.id] = written  # a cache write of the same images waits for it (hard links)
        written.add_done_callback(lambda done: self._job_writes.pop(job.id, None)
                                  if self._job_writes.get(job.id) is done else None)
        money.pending.append(_Pending(written, lambda fault: money.warnings.append(_unstored(job.id, fault))))

    # -- charges -----------------------------------------------------------------------------

    def _charge(self, money: CallMoney, job_id: str | None, cost: Cost) -> None:
        """Queue the charge for ``job_id`` (or its update); if the ledger cannot take it, the
        journal does (``_flush``)."""
        usd, estimated = cost.usd or 0.0, cost.estimated
        if self.ledger is None or money.recorded.get(job_id) == (usd, estimated):
            return
        fields: dict[str, Any] = {"usd": usd, "credits": cost.credits, "job_id": job_id, "cached": False,
                                  "estimated": estimated, "key": money.key}
        use_reservation = money.reservation is not None and money.reserved_for in (None, job_id)
        entry_id = money.reservation if use_reservation else new_id()
        record = {"op": "charge", "provider": money.provider.instance_name, "model": money.spec.id,
                  "entry_id": entry_id, "at": time.time(),
                  "reservation": money.reservation if use_reservation else None, **fields}
        if use_reservation:
            self._ledger_write(money, record, "settle", money.reservation, **fields)
            money.reserved_for = job_id or ""
        else:
            self._ledger_write(money, record, "record", provider=money.provider.instance_name, model=money.spec.id,
                               entry_id=entry_id, **fields)
        money.recorded[job_id] = (usd, estimated)

    def _void(self, money: CallMoney, job_id: str) -> None:
        """The vendor failed the job and does not bill it: its charge no longer counts."""
        if self.ledger is None:
            return
        self._ledger_write(money, {"op": "void", "job_id": job_id, "key": money.key}, "void",
                           job_id=job_id, key=money.key)
        money.recorded.pop(job_id, None)

    def _ledger_write(self, money: CallMoney, record: dict[str, Any], name: str, *args: Any, **kwargs: Any) -> None:
        """Queue a ledger write now: through its writer thread (``submit_*``) when it has one, else
        after the call's previous ledger write (Redis), so a charge and its update land in order."""
        ledger = self.ledger
        asubmit, submit = getattr(ledger, f"asubmit_{name}", None), getattr(ledger, f"submit_{name}", None)
        try:
            if asubmit is not None:
                written = self._queued(asubmit(*args, **kwargs))
            elif submit is not None:
                written = self._queued(asyncio.wrap_future(submit(*args, **kwargs)))
            else:
                call = functools.partial(getattr(ledger, name), *args, **kwargs)
                written = self._queued(_after(money.last_ledger_write, asyncio.to_thread(call)))
        except StorageError as exc:
            self._journal(money, exc, record)
            return
        money.last_ledger_write = written
        money.pending.append(_Pending(written, lambda fault: self._journal(money, fault, record)))

    async def _flush(self, money: CallMoney) -> None:
        """Wait for the writes queued after payment, a short while at most: a store that is still
        locked, full or down by then is a fault, reported as a warning (a charge: journalled)."""
        pending, money.pending = money.pending, []
        if not pending:
            return
        limit = min(AFTER_PAYMENT_WAIT_S, max(0.25, 0.25 * (wait_left() or AFTER_PAYMENT_WAIT_S)))
        # One wait for all of them (it cancels none: a write given up on still lands).
        await asyncio.wait([write.done for write in pending], timeout=limit)
        for write in pending:
            if not write.done.done():
                write.on_fault(StorageError(f"no answer within {AFTER_PAYMENT_WAIT_S:g} s: another process holds "
                                            "its lock, or it is down", store="store"))
            elif write.done.cancelled():
                write.on_fault(StorageError("the write was cancelled", store="store"))
            elif write.done.exception() is not None:
                write.on_fault(write.done.exception())  # type: ignore[arg-type]

    def _journal(self, money: CallMoney, fault: BaseException, record: dict[str, Any]) -> None:
        what = f"${record.get('usd', 0):.4f} charge" if record["op"] == "charge" else "refund"
        why = describe_fault(fault.__cause__ or fault)
        if self.journal is None:
            money.warnings.append(f"the ledger could not record this call's {what} ({why})")
            return
        try:
            path = self.journal.append(record)
        except StorageError as again:
            money.warnings.append(f"the ledger could not record this call's {what} ({why}), nor could the charge "
                                  f"journal ({again.message}): it is not on record anywhere")
            return
        money.warnings.append(f"the ledger could not record this call's {what} ({why}); it is in the charge "
                              f"journal {path} and goes into the ledger when imagegen next starts")

    # -- failure -----------------------------------------------------------------------------

    async def _failed(self, money: CallMoney, exc: BaseException) -> BaseException:
        """What a failure leaves on record; returns the exception to raise (with its job id filled in)."""
        if not money.accepted:
            lost = self._answer_lost(money, exc)
            if lost is None:
                await self._release(money)
            elif isinstance(exc, Exception):  # (a cancelled call stays cancelled, its charge recorded)
                lost.__cause__ = exc
                exc = lost
        else:
            job = list(money.accepted.values())[-1]
            if isinstance(exc, JobFailedError):
                # Not billed. The stored job keeps its last status: status() asks the vendor how it ended.
                self._void(money, job.id)
            elif isinstance(exc, OutputUnavailableError):
                exc.job_id = exc.job_id or job.id
                exc.urls = exc.urls or list(job.metadata.get("output_urls") or [])
                self._store(money, job.model_copy(update={
                    "status": "succeeded", "result": None,
                    "metadata": {**job.metadata, "output_urls": exc.urls, "outputs_fetched": False,
                                 "outputs_error": exc.message}}))
            elif isinstance(exc, JobTimeoutError):
                exc.job_id = exc.job_id or job.id
        await self._flush(money)
        if isinstance(exc, ImageGenError) and money.warnings:
            exc.warnings = list(money.warnings)  # type: ignore[attr-defined]
        return exc

    def _answer_lost(self, money: CallMoney, exc: BaseException) -> AnswerLostError | None:
        """A billed answer the failed call lost (``imagegen._answers``), for a provider that cannot
        resend for free: its charge and a failed job are recorded; returns the error to raise."""
        provider = money.provider
        if not provider.bills_unreadable_answers:
            return None
        answer = money.answers.lost(exc)
        if answer is None and not _billed_without_answer(provider, exc):
            return None
        request_id = (answer.headers.get(provider.request_id_header) if answer is not None
                      else getattr(exc, "request_id", None))
        native = request_id or f"lost-{uuid.uuid4().hex[:20]}"
        job_id = provider.job(native, "failed").id
        status = answer.status if answer is not None else getattr(exc, "status_code", None)
        if answer is not None and answer.body == "cut":  # the transport's own word for it, not a "could not reach"
            where, why = "was cut before it arrived whole", type(exc.__cause__ or exc).__name__
        else:
            where, why = "cannot be read", exc.message if isinstance(exc, ImageGenError) else type(exc).__name__
        message = (f"{provider.instance_name} answered HTTP {status}, so it billed this call, but its answer {where} "
                   f"({why}). imagegen did not send it again, which would pay twice: the charge is in the ledger at "
                   f"its estimate under job {job_id}, and the vendor keeps no copy to fetch. Sending the request "
                   "again is a new, paid call.")
        self._store(money, provider.job(native, "failed", request=money.request, model=money.spec.id,
                                        error={"code": "answer_lost", "message": message},
                                        metadata={"billed": True, "answer_lost": True}))
        self._charge(money, job_id, money.estimate)
        return AnswerLostError(message, provider=provider.instance_name, status_code=status, request_id=request_id,
                               job_id=job_id)

    # -- 4 and 5: outputs, settlement --------------------------------------------------------

    async def _succeeded(self, money: CallMoney, result: ImageResult, deadline: float) -> ImageResult:
        provider = money.provider
        if result.job_id and result.job_id not in money.accepted:  # a provider that never said it was accepted
            native = split_job_id(result.job_id)[1]
            self._accept(money, provider.job(native, "succeeded", result=result))
        try:
            await check_decodes(result)
        except OutputUnavailableError as exc:
            result = await self._fetch_again(money, exc, deadline)
        cost = result.cost if not result.cost.estimated else money.estimate
        result = result.model_copy(update={"provider": provider.instance_name, "model": money.spec.id, "cost": cost})
        self._charge(money, result.job_id, cost)
        if result.job_id:
            accepted = money.accepted[result.job_id]
            if accepted.result is None or accepted.result.images is not result.images \
                    or accepted.result.cost != result.cost:  # (a synchronous answer was stored as it is)
                self._store(money, accepted.model_copy(update={"status": "succeeded", "result": result,
                                                               "updated_at": _now()}))
        await self._flush(money)  # the finished job and its charge on record before the call returns
        if money.warnings:
            result = result.model_copy(update={"warnings": [*result.warnings, *money.warnings]})
        return result

    async def _recovering(self, money: CallMoney, exc: BaseException, deadline: float) -> ImageResult:
        """After ``exc`` from a provider call: a billed job's outputs are fetched once more (from a
        fresh poll); any other failure is recorded (``_failed``) and raised."""
        if isinstance(exc, OutputUnavailableError) and money.accepted:
            return await self._fetch_again(money, exc, deadline)
        raise await self._failed(money, exc)

    async def _fetch_again(self, money: CallMoney, failure: OutputUnavailableError, deadline: float) -> ImageResult:
        """Poll the finished job once more for fresh output URLs (where the vendor has them)."""
        job = money.accepted.get(failure.job_id or "") or next(iter(money.accepted.values()), None)
        if job is not None and deadline - time.monotonic() > 0:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    again = await money.provider.status(job.native_id)
                if again.status == "succeeded" and again.result is not None:
                    await check_decodes(again.result)
                    return again.result
            except Exception:
                pass
        raise await self._failed(money, failure)

    async def _finish_job(self, provider: Provider, spec: ModelSpec, job: Job, deadline: float) -> ImageResult:
        """Finish a job accepted earlier (by this process or another): poll it, or fetch its outputs
        again, without paying; its charge is settled by identity."""
        request = job.request or ImageRequest(prompt="a request this job store never saw")
        money = CallMoney(provider, spec, request, provider.estimate(request, spec))
        money.accepted[job.id] = job
        with call_scope(CallScope(deadline, self._outputs_announced(money))):
            try:
                if job.status == "succeeded" and job.result is None:  # outputs not fetched yet
                    result = await self._refetch(provider, job)
                else:
                    result = await provider.wait(job, deadline=deadline)
            except BaseException as exc:
                foreign = isinstance(exc, Exception) and not isinstance(exc, ImageGenError)
                known = provider.translate_error(exc) if foreign else exc
                if known is None:
                    raise  # a bug in the provider: not the vendor's doing, nothing to recover
                result = await self._recovering(money, known, deadline)
            return await self._succeeded(money, result, deadline)

    async def _refetch(self, provider: Provider, job: Job) -> ImageResult:
        try:
            fresh = await provider.status(job.native_id)
        except JobNotFoundError:
            raise OutputUnavailableError(
                f"{provider.instance_name} job {job.id} finished (billed), but its outputs were never fetched and "
                "the provider keeps no copy to fetch again", provider=provider.instance_name, job_id=job.id,
                urls=list(job.metadata.get("output_urls") or [])) from None
        return provider.result_of(fresh)


async def _after(previous: asyncio.Future[Any] | None, write: Awaitable[T]) -> T:
    """``write``, once ``previous`` (a write of the same call) has landed or failed."""
    if previous is not None:
        await asyncio.wait([previous])
    with translated("ledger", "write"):
        return await write


def _unstored(job_id: str, fault: BaseException) -> str:
    return (f"the job store could not record job {job_id} ({describe_fault(fault.__cause__ or fault)}); the "
            "result is returned, but status()/wait() cannot find the job in it later")


def _now() -> Any:
    from datetime import datetime

    return datetime.now(UTC)


def answer_lost_again(job: Job) -> AnswerLostError:
    """The outcome of a call whose billed answer was lost (its job, stored failed), told again to
    ``wait(job_id)`` or to a call with the same idempotency key: nothing is sent, nothing is paid."""
    told = (job.error or {}).get("message") or f"{job.provider} billed job {job.id}, but its answer was lost"
    return AnswerLostError(f"{told} (told again: a call with another idempotency key, or none, sends a new, "
                           "paid request)", provider=job.provider, job_id=job.id)


def _billed_without_answer(provider: Provider, exc: BaseException) -> bool:
    """A 2xx whose body was lost, from an API that bills it anyway: the money is gone."""
    status = getattr(exc, "status_code", None)
    return (provider.bills_unreadable_answers and isinstance(exc, InvalidResponseError)
            and status is not None and 200 <= status < 300)
