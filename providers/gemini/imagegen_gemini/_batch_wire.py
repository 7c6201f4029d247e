"""What goes over the wire for Gemini's Batch API (``batchGenerateContent``): pure, no I/O.

A batch is a set of ``generateContent`` requests, each under a caller-chosen key, sent either
inline in the create call or as a JSONL file uploaded first (spec §8). The batch is a
long-running Operation; ``batches.get`` answers its state and, once it has ended, the answers:
inline (``inlinedResponses``) or as a JSONL file (``responsesFile``). Facts beyond the spec,
each with its source:

- the Operation carries the output twice, under ``response`` and ``metadata.output``
  (maximhq/bifrost PR #4904); google-genai reads ``metadata.output``. Both are read here.
- inlined answers can come back out of request order (googleapis/python-genai #1909), so they
  are matched by ``metadata.key``, never by position;
- ``batchStats`` counts are int64, which proto3 JSON writes as strings;
- a per-request error is a ``google.rpc.Status``: ``code`` is a gRPC code, not an HTTP status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from imagegen import ImageRequest, ModelSpec
from imagegen.provider import json_object, parse_time

from ._catalog import expected_pixels

__all__ = [
    "BATCH_STATES",
    "INLINE_LIMIT_BYTES",
    "Delivery",
    "MemberRequest",
    "Snapshot",
    "choose_delivery",
    "expected_answer_bytes",
    "file_body",
    "http_status_of",
    "inline_body",
    "jsonl_lines",
    "outcomes_of_inline",
    "outcomes_of_jsonl",
    "read_operation",
]

Delivery = Literal["inline", "file"]

#: Spec §8 [BATCH]: inline requests may total at most 20 MB. The same bound is applied to what a
#: finished inline batch answers, because ``batches.get`` carries every answer twice and inline
#: batches of large images made it fail with 503/504 for days (spec §8, the pitfall).
INLINE_LIMIT_BYTES = 20 * 1000 * 1000
#: Output bytes per pixel, from the recorded answers (a 1408x768 3.x JPEG is ~0.85 MB: ~0.8 B/px;
#: a 1024x1024 2.5 Flash PNG ~1.5 MB: ~1.5 B/px); base64 adds a third.
_BYTES_PER_PIXEL = {"image/jpeg": 0.8, "image/png": 1.5}
#: A 3.x answer carries up to two thoughtSignature values of 1.1 to 2.9 MB each (recordings).
#: Every model is given the allowance: over-estimating only moves a batch to file delivery.
_SIGNATURE_ALLOWANCE_BYTES = 3_000_000

#: Batch states (``BATCH_STATE_*`` on the wire, ``JOB_STATE_*`` in google-genai) as imagegen
#: names them. ``expired``: the 24 h window ran out before the batch finished.
BATCH_STATES = {
    "PENDING": "pending", "QUEUED": "pending", "RUNNING": "running", "SUCCEEDED": "succeeded",
    "FAILED": "failed", "CANCELLED": "cancelled", "CANCELLING": "running", "EXPIRED": "expired",
    "PARTIALLY_SUCCEEDED": "succeeded", "PAUSED": "running", "UNSPECIFIED": "pending",
}
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})

#: gRPC status codes (``google.rpc.Code``) as the HTTP status and name Google maps them to.
_GRPC = {
    1: (499, "CANCELLED"), 2: (500, "UNKNOWN"), 3: (400, "INVALID_ARGUMENT"), 4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"), 6: (409, "ALREADY_EXISTS"), 7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"), 9: (400, "FAILED_PRECONDITION"), 10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"), 12: (501, "UNIMPLEMENTED"), 13: (500, "INTERNAL"), 14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"), 16: (401, "UNAUTHENTICATED"),
}


@dataclass(frozen=True)
class MemberRequest:
    """One request of a batch: its key (unique in the batch) and its ``generateContent`` body."""

    key: str
    body: dict[str, Any]

    def size(self) -> int:
        return len(json.dumps(self.body, separators=(",", ":")))


# -- sending ------------------------------------------------------------------------------------


def expected_answer_bytes(request: ImageRequest, spec: ModelSpec) -> int:
    """About how many bytes one answer to ``request`` takes: the image in base64 plus signatures."""
    size = spec.effective_size(request) if spec.sizes else "*"
    try:
        width, height = expected_pixels(spec, request.aspect_ratio, size)
    except (KeyError, ValueError, TypeError):
        width, height = 2048, 2048  # unknown shape: assume a large one (file delivery is the safe side)
    per_pixel = _BYTES_PER_PIXEL.get(str(spec.extra.get("output_mime", "")), 1.5)
    return math.ceil(width * height * per_pixel * 4 / 3) + _SIGNATURE_ALLOWANCE_BYTES


def choose_delivery(request_bytes: Iterable[int], answer_bytes: Iterable[int]) -> Delivery:
    """``inline`` while the requests and twice the answers fit in 20 MB, else ``file``."""
    total = sum(request_bytes) + 2 * sum(answer_bytes)
    return "inline" if total <= INLINE_LIMIT_BYTES else "file"


def inline_body(display_name: str, members: list[MemberRequest]) -> dict[str, Any]:
    """The ``batchGenerateContent`` body with every request inline, each under its key."""
    requests = [{"request": m.body, "metadata": {"key": m.key}} for m in members]
    return {"batch": {"displayName": display_name, "inputConfig": {"requests": {"requests": requests}}}}


def file_body(display_name: str, file_name: str) -> dict[str, Any]:
    """The ``batchGenerateContent`` body naming an uploaded JSONL file (``files/...``)."""
    return {"batch": {"displayName": display_name, "inputConfig": {"fileName": file_name}}}


def jsonl_lines(members: list[MemberRequest]) -> Iterator[bytes]:
    """The input file, one ``{"key", "request"}`` object per line."""
    for member in members:
        yield json.dumps({"key": member.key, "request": member.body}, separators=(",", ":")).encode() + b"\n"


# -- reading ------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One ``batches.get`` (or create) answer, read."""

    name: str
    #: pending | running | succeeded | failed | cancelled | expired
    state: str
    vendor_state: str
    stats: dict[str, int] = field(default_factory=dict)
    #: Inlined answers (``{"metadata": {"key"}, "response" | "error"}``) when the output is inline.
    inline: list[dict[str, Any]] | None = None
    #: The JSONL answers file (``files/...``) when the output is a file.
    responses_file: str | None = None
    #: The Operation's own error (the whole batch failed), a ``google.rpc.Status``.
    error: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def _state(raw: Any) -> tuple[str, str]:
    text = str(raw or "UNSPECIFIED")
    short = text.upper().removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    # An unknown state is treated as still running: polling on is safe, declaring it over is not.
    return BATCH_STATES.get(short, "running"), text


def read_operation(operation: dict[str, Any]) -> Snapshot:
    """Read a batch Operation (``{"name", "metadata": GenerateContentBatch, "done", "response"|"error"}``)."""
    metadata = json_object(operation.get("metadata"))
    name = str(operation.get("name") or metadata.get("name") or "")
    if not name.startswith("batches/"):
        raise ValueError(f"a batch name looks like batches/<id>, not {name!r}")
    state, vendor = _state(metadata.get("state"))
    stats = {key: _int(value) for key, value in json_object(metadata.get("batchStats")).items()}
    inline: Any = None
    responses_file: Any = None
    for output in (json_object(operation.get("response")), json_object(metadata.get("output"))):
        inline = inline or json_object(output.get("inlinedResponses")).get("inlinedResponses")
        responses_file = responses_file or output.get("responsesFile")
    items = [item for item in inline if isinstance(item, dict)] if isinstance(inline, list) else None
    snapshot = Snapshot(name=name, state=state, vendor_state=vendor, stats=stats, inline=items,
                        responses_file=str(responses_file) if responses_file else None,
                        error=json_object(operation.get("error")) or None)
    if snapshot.error is not None and not snapshot.done:
        snapshot.state = "failed"  # an Operation with an error is over, whatever the metadata says
    return snapshot


#: How far the vendor's clock may be behind ours when matching a batch's createTime.
CLOCK_SKEW_S = 300.0


def sent_batch(listing: dict[str, Any], *, display_name: str, model: str, requests: int,
               since: float) -> str | None:
    """The one batch of a ``batches.list`` page that is ours: the display name, model and request
    count we sent, created since ``since`` (epoch seconds, less the clock skew allowed); None when
    no batch, or more than one, fits."""
    found = []
    for operation in listing.get("operations") or []:
        metadata = json_object(operation.get("metadata") if isinstance(operation, dict) else None)
        created = parse_time(metadata.get("createTime"))
        if (metadata.get("displayName") == display_name and metadata.get("model") in (model, f"models/{model}")
                and _int(json_object(metadata.get("batchStats")).get("requestCount")) == requests
                and created is not None and created.timestamp() >= since - CLOCK_SKEW_S):
            found.append(str(operation.get("name") or metadata.get("name") or ""))
    return found[0] if len(found) == 1 and found[0].startswith("batches/") else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def outcomes_of_inline(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each inlined answer by its key: ``{"response": {...}}`` or ``{"error": {...}}``."""
    return dict(_keyed(items, lambda item: json_object(item.get("metadata")).get("key")))


def outcomes_of_jsonl(data: bytes) -> dict[str, dict[str, Any]]:
    """Each line of an answers file by its key. A line that is not JSON is skipped (the member
    then counts as missing, which is reported, rather than failing the whole batch)."""
    items = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            items.append(item)
    return dict(_keyed(items, lambda item: item.get("key")))


def _keyed(items: Iterable[dict[str, Any]], key_of: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in items:
        key = key_of(item)
        if key is None:
            continue
        if isinstance(item.get("response"), dict):
            yield str(key), {"response": item["response"]}
        else:
            missing = {"code": 2, "message": "no answer and no error"}
            yield str(key), {"error": json_object(item.get("error")) or missing}


def http_status_of(status: dict[str, Any]) -> tuple[int, str]:
    """The HTTP status and status name of a ``google.rpc.Status`` (gRPC code, or already HTTP)."""
    code = _int(status.get("code"))
    if code >= 100:  # some answers carry the HTTP status itself
        return code, str(status.get("status") or "")
    http, name = _GRPC.get(code, (500, "UNKNOWN"))
    return http, str(status.get("status") or name)
