"""Vendor batches: many requests sent as one batch job through a provider's own batch API
(Gemini's Batch API: half price, a 24-hour target), and the records that let any process
follow one after a restart.

This module holds the pure parts: the public models (`BatchJob`, `BatchMember`,
`BatchResult`, `BatchEstimate`), the protocol a provider implements to offer a vendor batch
(`VendorBatchAPI`, found as ``provider.vendor_batches``), and how a batch and its members are
written to the job store. The calls live in ``_vendor_batch_calls``.

In the job store a batch is one record (``<provider>:<batch id>``, e.g.
``gemini:batches/abc``) whose metadata lists its members, and each member is a record of its
own (``gemini:batches/abc#3``) holding its request (with its key, the request's
``idempotency_key``), and its result or error once the batch has ended. So ``status`` and
``wait`` take either id, from any process.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from . import _errors
from ._errors import ImageGenError, ProviderError
from ._models import Cost, ImageRequest, ImageResult, Job, JobStatus, make_job_id

if TYPE_CHECKING:  # pragma: no cover
    from ._capabilities import ModelSpec

__all__ = [
    "BatchEstimate",
    "BatchJob",
    "BatchMember",
    "BatchResult",
    "BatchState",
    "Delivery",
    "VendorBatchAPI",
    "VendorBatchSnapshot",
    "error_from_dict",
]

BatchState = Literal["pending", "running", "succeeded", "failed", "cancelled", "expired"]
Delivery = Literal["inline", "file", "concurrent"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled", "expired"})
#: Separates a batch's native id from a member's index in member ids.
MEMBER_SEPARATOR = "#"
_RECORD = "vendor_batch"
_MEMBER = "vendor_batch_member"


class BatchEstimate(BaseModel):
    """What a set of requests is expected to cost through a vendor batch, next to sending them one
    by one. No network call is made to compute it."""

    model_config = ConfigDict(defer_build=True)

    provider: str
    model: str
    members: int
    #: The same requests sent as standard calls.
    standard: Cost
    #: Through the vendor's batch API (``standard`` x ``discount``).
    batch: Cost
    #: The batch price as a fraction of the standard one (0.5 on Gemini).
    discount: float
    #: How the requests would travel: ``inline`` in the create call, or an uploaded ``file``.
    delivery: Delivery | None = None

    @property
    def savings_usd(self) -> float | None:
        if self.standard.usd is None or self.batch.usd is None:
            return None
        return round(self.standard.usd - self.batch.usd, 9)


class BatchMember(BaseModel):
    """One request of a batch: its key, its own job id, and how it ended."""

    model_config = ConfigDict(defer_build=True)

    index: int
    #: The member's key in the vendor batch: its request's ``idempotency_key``.
    key: str
    job_id: str
    status: JobStatus = "queued"
    #: ``ImageGenError.to_dict()`` of a member that failed; `BatchResult.errors` makes it typed again.
    error: dict[str, Any] | None = None
    #: What this member costs at the batch price: the estimate charged when the vendor accepted
    #: the batch, then what the vendor reported once it has ended (0 for a member that failed).
    cost: Cost | None = None
    #: A budget reservation left by a batch sent before charges were recorded at acceptance
    #: (settled or released when the batch ends); None for batches sent since.
    reservation: str | None = Field(default=None, repr=False)
    #: The member's result, filled in by ``wait`` (not kept in the batch record: its own job holds it).
    result: ImageResult | None = Field(default=None, repr=False)


class BatchJob(Job):
    """A vendor batch: a Job (``status``, ``done``, ``id``) with its members."""

    state: BatchState = "pending"
    #: The vendor's own name for the state (``BATCH_STATE_RUNNING``, ...).
    vendor_state: str | None = None
    delivery: Delivery = "inline"
    display_name: str | None = None
    members: list[BatchMember] = Field(default_factory=list)
    estimate: BatchEstimate | None = None
    #: True once every member's outcome is recorded and its charge settled to what the vendor
    #: reported (or voided, for a member that failed).
    settled: bool = False
    #: Why the last look at the vendor failed, when it did (e.g. 503/504 on ``batches.get``).
    last_error: str | None = None
    #: Store faults met while recording the batch or its charges (not kept in the job store).
    warnings: list[str] = Field(default_factory=list)

    def member(self, key_or_index: str | int) -> BatchMember:
        for member in self.members:
            if member.key == key_or_index or member.index == key_or_index:
                return member
        raise KeyError(key_or_index)

    @property
    def failed(self) -> list[BatchMember]:
        return [m for m in self.members if m.status in ("failed", "cancelled")]

    # -- the job store's view -------------------------------------------------------------

    def to_record(self) -> Job:
        """The plain Job the job store keeps (members without results: their own jobs hold those)."""
        body = self.model_dump(mode="json", include={"state", "vendor_state", "delivery", "display_name",
                                                     "estimate", "settled", "last_error"})
        body["members"] = [m.model_dump(mode="json", exclude={"result"}) for m in self.members]
        return Job(id=self.id, provider=self.provider, native_id=self.native_id, status=self.status,
                   model=self.model, created_at=self.created_at, updated_at=self.updated_at,
                   metadata={**self.metadata, _RECORD: body})

    @classmethod
    def from_record(cls, job: Job) -> BatchJob:
        body = dict(job.metadata.get(_RECORD) or {})
        metadata = {k: v for k, v in job.metadata.items() if k != _RECORD}
        return cls.model_validate({**job.model_dump(exclude={"metadata", "result"}), **body,
                                   "metadata": metadata})

    @staticmethod
    def is_record(job: Job | None) -> bool:
        return job is not None and _RECORD in job.metadata


def member_job_id(provider: str, batch_native_id: str, index: int) -> str:
    return make_job_id(provider, f"{batch_native_id}{MEMBER_SEPARATOR}{index}")


def member_record(batch: BatchJob, member: BatchMember, request: ImageRequest | None) -> Job:
    """The job-store record of one member (its request, and later its result or error)."""
    native_id = member.job_id.partition(":")[2]
    return Job(id=member.job_id, provider=batch.provider, native_id=native_id, status=member.status,
               model=batch.model, request=request, error=member.error,
               metadata={_MEMBER: {"batch_id": batch.id, "index": member.index, "key": member.key}})


def batch_id_of_member(job: Job | None) -> str | None:
    """The batch a member record belongs to, or None for any other job."""
    if job is None:
        return None
    info = job.metadata.get(_MEMBER)
    return str(info["batch_id"]) if isinstance(info, dict) and "batch_id" in info else None


def batch_status(state: str) -> JobStatus:
    """The Job status a batch state stands for (an expired batch failed)."""
    return {"pending": "queued", "running": "running", "succeeded": "succeeded", "failed": "failed",
            "cancelled": "cancelled", "expired": "failed"}.get(state, "running")  # type: ignore[return-value]


class BatchResult(ImageResult):
    """A finished vendor batch: every member's outcome in input order, and (as an ImageResult)
    the images of the members that succeeded, in that order, with the total cost."""

    batch_id: str
    state: BatchState
    members: list[BatchMember] = Field(default_factory=list)

    @property
    def results(self) -> list[ImageResult | ImageGenError]:
        """Per member, in input order: its ImageResult, or its error (typed)."""
        return [m.result if m.result is not None else error_from_dict(m.error or {}) for m in self.members]

    @property
    def errors(self) -> dict[str, ImageGenError]:
        """The members that did not succeed, by key, as typed errors."""
        return {m.key: error_from_dict(m.error or {}) for m in self.members if m.status != "succeeded"}


@dataclass
class VendorBatchSnapshot:
    """What a provider reports about one of its batches."""

    state: BatchState
    vendor_state: str
    #: Per member key, once the batch has ended: its result (cost = what the batch charged) or error.
    outcomes: dict[str, ImageResult | ImageGenError] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: The batch's own error message, if the whole batch failed.
    message: str | None = None


class VendorBatchAPI(Protocol):
    """What a provider offers as ``provider.vendor_batches`` when it has a vendor batch API.

    The provider also marks the models that can be batched with the ``vendor_batch``
    capability and gives their price a ``batch_discount``.
    """

    def delivery(self, requests: list[ImageRequest], spec: ModelSpec) -> Delivery:
        """How these requests would travel (inline or as an uploaded file)."""
        ...

    async def create(self, members: list[tuple[str, ImageRequest]], spec: ModelSpec, *, display_name: str,
                     delivery: Delivery | Literal["auto"]) -> tuple[str, Delivery]:
        """Send the batch (``(key, request)`` pairs) once accepted; return its native id and how
        the requests travelled (``"auto"``: the provider's choice)."""
        ...

    async def poll(self, native_id: str, spec: ModelSpec) -> VendorBatchSnapshot:
        """Where the batch stands; with its outcomes once it has ended."""
        ...

    async def cancel(self, native_id: str) -> None:
        """Ask the vendor to stop the batch (members not yet done end cancelled)."""
        ...

    # Optional: ``async def find(display_name, spec, *, requests, since) -> str | None``, the
    # native id of the batch the vendor made from a create call whose answer was lost (matched
    # by display name, model, request count, created since ``since``), so it is followed instead
    # of being sent - and paid for - twice.


def error_from_dict(data: dict[str, Any]) -> ImageGenError:
    """An ``ImageGenError.to_dict()`` turned back into the typed error it was written from."""
    cls = getattr(_errors, str(data.get("type") or ""), None)
    if not (isinstance(cls, type) and issubclass(cls, ImageGenError)):
        cls = ProviderError
    error = cls.__new__(cls)
    # Not through the constructor: every subclass takes different keywords; the fields to_dict
    # wrote are restored as attributes.
    Exception.__init__(error, str(data.get("message") or "the batch member failed"))
    error.message = str(data.get("message") or "the batch member failed")
    for key in ("provider", "status_code", "retry_after"):
        setattr(error, key, data.get(key))
    for key in _OPTIONAL_FIELDS:  # the subclasses' own fields, which to_dict does not keep
        setattr(error, key, None)
    error.attempts, error.pending_job_ids = [], []  # type: ignore[attr-defined]
    if "retryable" in data and not isinstance(getattr(cls, "retryable", None), property):
        error.retryable = bool(data["retryable"])
    return error


_OPTIONAL_FIELDS = ("request_id", "body", "code", "reason", "provider_message", "text", "required", "available",
                    "job_id", "limit_usd", "spent_usd", "estimate_usd")


def unique_keys(keys: Iterable[str]) -> list[str]:
    """The keys, checked to be unique (a vendor batch matches answers to requests by key)."""
    seen: set[str] = set()
    out = []
    for key in keys:
        if key in seen:
            raise _errors.InvalidRequestError(
                f"two requests of the batch share the key {key!r}; each needs its own idempotency_key")
        seen.add(key)
        out.append(key)
    return out
