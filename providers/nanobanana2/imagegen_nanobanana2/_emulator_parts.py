"""Building blocks of the nano-banana2 emulator: jobs, request checks, multipart, webhooks."""

from __future__ import annotations

import io
import json
import math
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from typing import Any

import anyio
import httpx

from imagegen.testing import JobTimeline, Reject

__all__ = ["EmuJob", "FormData", "WebhookSender", "nearest_ratio", "parse_multipart", "whole"]

#: Fields each endpoint understands (the guide's names, plus the SDK's callback spellings).
GENERATE_FIELDS = frozenset({
    "prompt", "aspect_ratio", "num_outputs", "output_format", "guidance_scale", "seed",
    "reference_images", "style_reference_url", "style_strength", "webhookUrl", "webhook_url",
})
EDIT_FIELDS = frozenset({"image", "image_url", "imageUrl", "prompt", "aspect_ratio", "output_format",
                         "webhookUrl", "webhook_url"})
BLEND_FIELDS = frozenset({"image1", "image2", "prompt", "blend_strength", "webhookUrl", "webhook_url"})
OUTPUT_FORMATS = {"png": ("png", "image/png"), "jpeg": ("jpeg", "image/jpeg"), "jpg": ("jpeg", "image/jpeg")}


def utc_stamp(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``, the guide's timestamp form."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole(amount: float) -> int | float:
    """Credits as the guide shows them: ``4``, not ``4.0`` (a fraction stays a fraction)."""
    return int(amount) if float(amount).is_integer() else amount


def new_job_id() -> str:
    return "gen_" + secrets.token_hex(6)


@dataclass
class EmuJob:
    """One generation as the emulated service keeps it; `timeline` says when it is due."""

    id: str
    key: str
    n: int
    fmt: str
    size: tuple[int, int]
    base_url: str
    timeline: JobTimeline
    webhook_url: str | None = None
    fail: bool = False
    status: str = "pending"
    outputs: list[dict[str, Any]] = field(default_factory=list)
    credits: float = 0.0
    processing_time_ms: int | None = None
    error: str | None = None
    label: str = ""

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    @property
    def polls(self) -> int:
        return self.timeline.polls

    @property
    def created_at(self) -> str:
        return utc_stamp(self.timeline.created_at)

    def body(self) -> dict[str, Any]:
        """The generation object (§4 of the spec): full once completed, short before."""
        data: dict[str, Any] = {"id": self.id, "status": self.status, "created_at": self.created_at}
        if self.status == "completed":
            data.update(outputs=self.outputs, credits_used=whole(self.credits),
                        processing_time_ms=self.processing_time_ms)
        elif self.status == "failed":
            data["error"] = self.error
        return data

    def webhook_payload(self) -> dict[str, Any]:
        """The documented callback body: ``{job_id, status, outputs}``."""
        return {"job_id": self.id, "status": self.status, "outputs": self.outputs}


def nearest_ratio(width: int, height: int, sizes: dict[str, list[int]]) -> str:
    """The native aspect ratio closest to ``width``x``height`` (for ``aspect_ratio=auto``)."""
    target = math.log(width / height)
    return min(sizes, key=lambda r: abs(math.log(sizes[r][0] / sizes[r][1]) - target))


def number(value: Any, name: str, low: float, high: float) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise Reject(400, f"{name} must be a number") from None
    if isinstance(value, bool) or not math.isfinite(result) or not low <= result <= high:
        raise Reject(400, f"{name} must be between {low:g} and {high:g}")
    return result


@dataclass
class Upload:
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class FormData:
    fields: dict[str, str]
    files: dict[str, Upload]

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for the request log (file bytes become sizes)."""
        files = {k: {"filename": f.filename, "content_type": f.content_type, "size": len(f.data)}
                 for k, f in self.files.items()}
        return {**self.fields, **files}


def parse_multipart(body: bytes, content_type: str) -> FormData:
    """Parse ``multipart/form-data`` with the standard library (no python-multipart needed)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise Reject(400, "Expected multipart/form-data")
    header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(header + body)
    if not message.is_multipart():
        raise Reject(400, "Malformed multipart body")
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = Upload(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode("utf-8", errors="replace")
    return FormData(fields, files)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height of an uploaded image, or a 400 the way an API would refuse it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, ValueError):
        raise Reject(400, "Invalid image file: expected PNG, JPEG or WebP") from None


class WebhookSender:
    """POSTs ``{job_id, status, outputs}`` with retries; counts every attempt.

    ``fail`` makes every attempt fail without sending (as an unreachable receiver would).
    Each delivery is tried ``attempts`` times with backoff ``backoff * 2**k`` seconds.
    """

    def __init__(self, counters: Any, *, attempts: int, backoff: float, timeout: float, fail: bool) -> None:
        self.counters = counters
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.fail = fail
        self.log: deque[dict[str, Any]] = deque(maxlen=500)
        self._settled = 0
        self._cond = threading.Condition()

    async def deliver(self, url: str, payload: dict[str, Any]) -> bool:
        body = json.dumps(payload).encode()
        for attempt in range(1, self.attempts + 1):
            self.counters.incr("webhook_attempts")
            record: dict[str, Any] = {"url": url, "job_id": payload["job_id"], "attempt": attempt}
            ok = False
            if self.fail:
                record["error"] = "delivery failed (fail_webhooks switch)"
            else:
                try:
                    async with httpx.AsyncClient(timeout=self.timeout) as http:
                        response = await http.post(url, content=body,
                                                   headers={"Content-Type": "application/json"})
                    record["status_code"] = response.status_code
                    ok = response.is_success
                except httpx.HTTPError as exc:
                    record["error"] = type(exc).__name__
            self.log.append(record)
            if ok:
                self.counters.incr("webhook_deliveries")
                self._settle()
                return True
            self.counters.incr("webhook_failures")
            if attempt < self.attempts:
                await anyio.sleep(self.backoff * 2 ** (attempt - 1))
        self.counters.incr("webhook_given_up")
        self._settle()
        return False

    def _settle(self) -> None:
        with self._cond:
            self._settled += 1
            self._cond.notify_all()

    def wait(self, count: int, timeout: float) -> bool:
        """Block until ``count`` deliveries have succeeded or been given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._settled >= count, timeout)
