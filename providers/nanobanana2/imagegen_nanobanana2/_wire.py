"""The nano-banana2.com wire format: pure request building and response parsing.

No I/O lives here, so the provider, the webhook helper and the tests share one
reading of every shape. The API is documented by a single developer guide (seed
004); most shapes are unverified, so this module is strict about what it sends
(only the fields the guide shows, snake_case) and tolerant about what it reads:
only ``id`` and ``status`` are required, every other field is optional, snake_case
and camelCase spellings are both accepted, and unknown fields are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imagegen import JobStatus
from imagegen.provider import parse_number, parse_time

__all__ = [
    "ErrorBody",
    "Generation",
    "Output",
    "map_status",
    "parse_error_body",
    "parse_generation",
    "salvage_job_id",
]

# Vendor status -> imagegen status. Comparable APIs spell the same states differently
# (docs/providers/nanobanana2.md), so a few synonyms are accepted; the raw value is always kept in the Job's metadata.
_STATUS_MAP: dict[str, JobStatus] = {
    "pending": "queued",
    "queued": "queued",
    "waiting": "queued",
    "in_queue": "queued",
    "starting": "queued",
    "processing": "running",
    "running": "running",
    "in_progress": "running",
    "generating": "running",
    "completed": "succeeded",
    "complete": "succeeded",
    "succeeded": "succeeded",
    "success": "succeeded",
    "ok": "succeeded",
    "failed": "failed",
    "fail": "failed",
    "error": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


def map_status(raw: str) -> JobStatus | None:
    """The imagegen status of a vendor status, or None when it is unknown (treat as running)."""
    return _STATUS_MAP.get(raw.strip().lower())


def pick(data: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present (not None) in ``data``."""
    for name in names:
        value = data.get(name)
        if value is not None:
            return value
    return None


def _whole(value: Any) -> float | int | None:
    """A number, as an int when it is whole (credits and milliseconds usually are)."""
    number = parse_number(value)
    return int(number) if number is not None and number.is_integer() else number


def _int(value: Any) -> int | None:
    number = parse_number(value)
    return None if number is None else int(number)


@dataclass(frozen=True)
class Output:
    """One entry of ``outputs``: a URL and the size the JSON claims (the bytes decide)."""

    url: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Generation:
    """The generation object of /generate, /edit, /blend, /status and webhooks."""

    id: str
    raw_status: str
    status: JobStatus | None
    outputs: tuple[Output, ...] = ()
    created_at: datetime | None = None
    credits_used: float | int | None = None
    processing_time_ms: float | int | None = None
    error: str | None = None
    error_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The vendor facts worth keeping on a Job or result, JSON-able."""
        meta: dict[str, Any] = {"vendor_status": self.raw_status}
        if self.credits_used is not None:
            meta["credits_used"] = self.credits_used
        if self.processing_time_ms is not None:
            meta["processing_time_ms"] = self.processing_time_ms
        if self.outputs:
            meta["outputs"] = [
                {"url": o.url, "width": o.width, "height": o.height} for o in self.outputs
            ]
        return meta


def _error_text(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The failure message and code of a failed job; ``error`` may be a string or an object."""
    error = pick(data, "error", "failure_reason", "failureReason", "message", "detail")
    if isinstance(error, dict):
        message = pick(error, "message", "detail", "error")
        code = pick(error, "code", "type")
        return (None if message is None else str(message)), (None if code is None else str(code))
    code = pick(data, "error_code", "errorCode", "code")
    return (None if error is None else str(error)), (None if code is None else str(code))


def _outputs(value: Any) -> tuple[Output, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TypeError(f"'outputs' is a {type(value).__name__}, not a list")
    outputs = []
    for entry in value:
        # A bare URL string is the shape of some peer APIs; accept it too.
        if isinstance(entry, str):
            outputs.append(Output(url=entry))
            continue
        if not isinstance(entry, dict):
            raise TypeError(f"an 'outputs' entry is a {type(entry).__name__}, not an object")
        url = pick(entry, "url", "image_url", "imageUrl")
        if not isinstance(url, str) or not url:
            raise KeyError("an 'outputs' entry has no 'url'")
        outputs.append(Output(url=url, width=_int(entry.get("width")), height=_int(entry.get("height"))))
    return tuple(outputs)


def parse_generation(data: Any, *, id_keys: tuple[str, ...] = ("id", "job_id", "jobId")) -> Generation:
    """Read a generation object; raises KeyError/TypeError when ``id`` or ``status`` is missing."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    if isinstance(data.get("data"), dict) and "status" not in data:
        data = data["data"]  # a peer-style {"data": {...}} envelope
    native_id = pick(data, *id_keys)
    if not isinstance(native_id, (str, int)) or isinstance(native_id, bool) or str(native_id) == "":
        raise KeyError(f"the answer has no job id ({' or '.join(id_keys)})")
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or not raw_status:
        raise KeyError("the answer has no 'status'")
    status = map_status(raw_status)
    error, code = _error_text(data) if status == "failed" else (None, None)
    known = {"id", "job_id", "jobId", "status", "outputs", "created_at", "createdAt", "credits_used",
             "creditsUsed", "processing_time_ms", "processingTimeMs"}
    return Generation(
        id=str(native_id),
        raw_status=raw_status,
        status=status,
        outputs=_outputs(data.get("outputs")),
        created_at=parse_time(pick(data, "created_at", "createdAt")),
        credits_used=_whole(pick(data, "credits_used", "creditsUsed")),
        processing_time_ms=_whole(pick(data, "processing_time_ms", "processingTimeMs")),
        error=error,
        error_code=code,
        extra={k: v for k, v in data.items() if k not in known and isinstance(v, (str, int, float, bool))},
    )


@dataclass(frozen=True)
class ErrorBody:
    """What an error answer says, read as tolerantly as possible."""

    message: str | None = None
    code: str | None = None
    retry_after: Any = None
    required: float | None = None
    available: float | None = None


def parse_error_body(data: Any) -> ErrorBody:
    """Read ``{"error": "..."}``, ``{"error": {"message", "code"}}``, ``{"message"}`` or ``{"detail"}``."""
    if not isinstance(data, dict):
        return ErrorBody(message=None if data is None else str(data)[:300])
    error = data.get("error")
    message: Any = None
    code: Any = pick(data, "code", "error_code", "errorCode")
    if isinstance(error, dict):
        message = pick(error, "message", "detail", "error")
        code = pick(error, "code", "type") or code
        nested: dict[str, Any] = error
    else:
        message = error
        nested = {}
    if message is None or message == "":
        message = pick(data, "message", "detail", "msg")
    retry_after = pick(data, "retry_after", "retryAfter") or pick(nested, "retry_after", "retryAfter")
    return ErrorBody(
        message=None if message is None else str(message),
        code=None if code is None else str(code),
        retry_after=retry_after,
        required=parse_number(pick(data, "required", "credits_required", "creditsRequired", "cost")),
        available=parse_number(pick(data, "available", "balance", "credits_available", "creditsAvailable")),
    )


def parse_balance(data: Any) -> float:
    """The credit balance of ``{"balance": n}`` (also ``credits``/``remaining``, or under ``data``)."""
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object with 'balance', got {type(data).__name__}")
    value = parse_number(pick(data, "balance", "credits", "remaining", "credits_remaining", "creditsRemaining"))
    if value is None:
        raise KeyError("the balance answer has no numeric 'balance'")
    return value


# The id as the first field of the object, complete with its closing quote, in the charset
# job ids use: anything less certain is not taken for an id.
_LEADING_ID = re.compile(rb'\A\s*\{\s*"(?:id|job_id|jobId)"\s*:\s*"([A-Za-z0-9_.:-]{1,200})"')


def salvage_job_id(body: bytes) -> str | None:
    """The job id at the head of a submit answer that was cut short, if it survived.

    The service bills a job when it accepts it; an answer cut off in transit would otherwise
    lose the id, and a retry would pay for the same image again. With the id, the job can be
    polled to its result instead.
    """
    match = _LEADING_ID.match(body[:1024])
    return match.group(1).decode() if match else None
