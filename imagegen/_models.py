"""Requests, results, images and jobs: the pydantic v2 models of the public interface.

Unset options mean "the provider's default". Image bytes live in memory and are
kept out of every ``repr``.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import InvalidImageError, InvalidRequestError
from ._imaging import probe_image

__all__ = [
    "Attempt",
    "Cost",
    "Image",
    "ImageRequest",
    "ImageResult",
    "InputImage",
    "Job",
    "JobStatus",
    "Usage",
]

#: Images from this size on are hashed once however many threads ask at the same moment.
_SHARED_HASH_BYTES = 1024 * 1024
_HASHING = threading.Lock()

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})

#: Largest ``n`` one call may ask for; more is almost certainly a mistake.
MAX_N = 64
#: Largest prompt accepted before any provider-specific limit applies.
MAX_PROMPT_CHARS = 32_000
#: Unicode's control characters (category Cc: U+0000-U+001F, U+007F-U+009F) but tab, LF and CR.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
#: Largest input image file read from disk or memory.
MAX_INPUT_IMAGE_BYTES = 50 * 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Image(BaseModel):
    """One image, bytes in memory; width, height and MIME type read from the bytes."""

    # The content hash, once computed, for these very bytes (a slot: not a field, not compared,
    # not copied; the job store and the cache both name files by it).
    __slots__ = ("_sha256",)

    # defer_build, on every model the client imports: pydantic builds a model's validator when it is
    # first used, not at import - most of what `from imagegen import Client` used to cost.
    model_config = ConfigDict(defer_build=True, frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes = Field(repr=False)
    mime_type: str
    width: int
    height: int
    url: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, *, url: str | None = None, what: str = "image") -> Image:
        """Build an Image, reading format and size from ``data`` (raises InvalidImageError)."""
        info = probe_image(data, what=what)
        return cls(data=data, mime_type=info.mime_type, width=info.width, height=info.height, url=url)

    @property
    def sha256(self) -> str:
        memo: tuple[bytes, str | threading.Lock] | None = getattr(self, "_sha256", None)
        if memo is not None and memo[0] is self.data and isinstance(memo[1], str):
            return memo[1]
        if len(self.data) < _SHARED_HASH_BYTES:
            digest = hashlib.sha256(self.data).hexdigest()
            object.__setattr__(self, "_sha256", (self.data, digest))
            return digest
        return self._shared_sha256()

    def _shared_sha256(self) -> str:
        # A large image is hashed once even when two stores' writer threads (the job store's and
        # the cache's) ask at the same moment: the second waits for the first's digest.
        with _HASHING:
            memo = getattr(self, "_sha256", None)
            mine = memo is None or memo[0] is not self.data
            if mine:
                memo = (self.data, threading.Lock())
                memo[1].acquire()
                object.__setattr__(self, "_sha256", memo)
        assert memo is not None
        claim = memo[1]
        if isinstance(claim, str):
            return claim
        if not mine:
            with claim:  # released once the other thread has its digest (or failed)
                pass
            return self.sha256
        try:
            digest = hashlib.sha256(self.data).hexdigest()
            object.__setattr__(self, "_sha256", (self.data, digest))
            return digest
        except BaseException:
            object.__setattr__(self, "_sha256", None)  # the next caller tries again
            raise
        finally:
            claim.release()

    @property
    def extension(self) -> str:
        sub = self.mime_type.split("/", 1)[-1]
        return {"jpeg": "jpg", "svg+xml": "svg"}.get(sub, sub)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the image to ``path`` and return where it went.

        A directory gets ``<sha256[:16]>.<ext>`` inside it, in the image's own format. A file
        name gets the format its extension names (``.png``, ``.jpg``/``.jpeg``, ``.webp``,
        ``.gif``, ``.bmp``, ``.tif``): the bytes as they are when they already are that format,
        converted otherwise, so ``villa.png`` always holds a PNG. A name without an extension
        gets the bytes as they are; an extension that names no image format is refused
        (``InvalidRequestError``), as it would produce a file whose name lies about it.
        """
        from ._imaging import convert_image, format_for_suffix, mime_for_format

        target = Path(path)
        data = self.data
        if target.is_dir():
            target = target / f"{self.sha256[:16]}.{self.extension}"
        elif target.suffix:
            fmt = format_for_suffix(target.suffix)
            if fmt is None:
                raise InvalidRequestError(
                    f"cannot save an image as {target.name}: {target.suffix!r} names no image format; "
                    f"use .png, .jpg, .webp (converted as needed) or a directory")
            if mime_for_format(fmt) != self.mime_type:
                data = convert_image(self.data, fmt)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return target


class InputImage(BaseModel):
    """An input (reference, edit source or mask) image: bytes, or a URL the provider fetches."""

    model_config = ConfigDict(defer_build=True, frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    data: bytes | None = Field(default=None, repr=False)
    url: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    name: str | None = None

    @classmethod
    def coerce(cls, value: Any, *, what: str = "input image") -> InputImage:
        """Accept bytes, a path, an ``http(s)://`` URL, an Image or an InputImage."""
        if isinstance(value, InputImage):
            if value.data is not None and value.mime_type is None:
                # Built by hand from bytes: the bytes decide the type (and must be an image).
                return cls._from_data(value.data, what=what, name=value.name)
            return value
        if isinstance(value, Image):
            return cls(data=value.data, mime_type=value.mime_type, width=value.width, height=value.height)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls._from_data(bytes(value), what=what, name=None)
        if isinstance(value, str) and value.split("://", 1)[0].lower() in ("http", "https"):
            return cls(url=value)
        if isinstance(value, (str, os.PathLike)):
            return cls._from_path(Path(value), what=what)
        raise InvalidImageError(
            f"{what} must be bytes, a file path, an http(s) URL or an Image, not {type(value).__name__}"
        )

    @classmethod
    def _from_path(cls, path: Path, *, what: str) -> InputImage:
        try:
            size = path.stat().st_size
            if size > MAX_INPUT_IMAGE_BYTES:
                raise InvalidImageError(
                    f"{what} {path} is {size} bytes, over the {MAX_INPUT_IMAGE_BYTES} allowed; shrink it first"
                )
            data = path.read_bytes()
        except InvalidImageError:
            raise
        except OSError as exc:
            raise InvalidImageError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
        return cls._from_data(data, what=f"{what} {path}", name=path.name)

    @classmethod
    def _from_data(cls, data: bytes, *, what: str, name: str | None) -> InputImage:
        if len(data) > MAX_INPUT_IMAGE_BYTES:
            raise InvalidImageError(f"{what} is {len(data)} bytes, over the {MAX_INPUT_IMAGE_BYTES} allowed")
        info = probe_image(data, what=what, verify=True)
        return cls(data=data, mime_type=info.mime_type, width=info.width, height=info.height, name=name)

    @property
    def sha256(self) -> str:
        """Content hash (of the bytes, or of the URL when only a URL is known)."""
        return hashlib.sha256(self.data if self.data is not None else (self.url or "").encode()).hexdigest()


class ImageRequest(BaseModel):
    """One generation or edit request. ``None`` means "the provider's default"."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    prompt: str
    operation: Literal["generate", "edit"] = "generate"
    provider: str | None = None
    model: str | None = None
    aspect_ratio: str | None = None
    size: str | None = None
    n: int = 1
    images: list[InputImage] = Field(default_factory=list)
    mask: InputImage | None = None
    seed: int | None = None
    output_format: str | None = None
    webhook_url: str | None = None
    #: Provider-specific options (for example ``{"blend": True}``); unknown ones are errors.
    options: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True
    #: Overall deadline for the call, in seconds.
    timeout: float | None = None
    #: Identifies one logical request across retries, so a provider that supports it
    #: (Wireflow's ``Idempotency-Key``) never charges a retried call twice. The client
    #: fills it in when it is not given.
    idempotency_key: str | None = None
    #: The earlier turns of a multi-turn edit, in the provider's own wire format, sent before
    #: this request (``Client.session`` fills it in; None: no conversation). Not written with
    #: the job, whose result keeps its own turn, and never cached.
    conversation: list[dict[str, Any]] | None = Field(default=None, exclude=True, repr=False)

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise ValueError("the prompt is empty; describe the image you want")
        if len(value) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt has {len(value)} characters, over the {MAX_PROMPT_CHARS} allowed")
        if _CONTROL.search(value) is not None:  # (the per-character look-up only for a prompt that has one)
            bad = {ch for ch in value if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"}
            codes = ", ".join(sorted(f"U+{ord(ch):04X}" for ch in bad))
            raise ValueError(f"the prompt contains control characters ({codes}); remove them")
        return value

    @field_validator("n")
    @classmethod
    def _check_n(cls, value: int) -> int:
        if not 1 <= value <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N}, not {value}")
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {value}")
        return value

    @field_validator("images", mode="before")
    @classmethod
    def _coerce_images(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, (str, bytes, os.PathLike, Image, InputImage)):
            value = [value]
        # Dicts are stored requests being loaded back: pydantic validates them in its own
        # mode (JSON mode decodes base64 bytes), so they pass through untouched.
        return [v if isinstance(v, dict) else InputImage.coerce(v, what=f"image {i + 1}")
                for i, v in enumerate(value)]

    @field_validator("mask", mode="before")
    @classmethod
    def _coerce_mask(cls, value: Any) -> Any:
        return value if value is None or isinstance(value, dict) else InputImage.coerce(value, what="mask")

    @classmethod
    def build(cls, **fields: Any) -> ImageRequest:
        """Construct a request, turning validation failures into ``InvalidRequestError``."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise _request_error(exc) from None

    def with_updates(self, **fields: Any) -> ImageRequest:
        return type(self).build(**{**self.model_dump(exclude_defaults=False), **fields})


def _request_error(exc: ValidationError) -> InvalidRequestError:
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, InvalidImageError):
            return ctx_error
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "request"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {msg}")
    return InvalidRequestError("invalid request: " + "; ".join(parts))


class Usage(BaseModel):
    """What a call consumed, as the provider reported it."""

    model_config = ConfigDict(defer_build=True)

    input_tokens: int | None = None
    output_tokens: int | None = None
    image_tokens: int | None = None
    text_tokens: int | None = None
    thoughts_tokens: int | None = None
    credits: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class Cost(BaseModel):
    """Money spent (or expected to be spent) on a call, in USD and provider credits."""

    model_config = ConfigDict(defer_build=True)

    usd: float | None = None
    credits: float | None = None
    estimated: bool = True
    breakdown: dict[str, float] = Field(default_factory=dict)

    def __add__(self, other: Cost) -> Cost:
        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else round((a or 0.0) + (b or 0.0), 9)

        breakdown = dict(self.breakdown)
        for key, value in other.breakdown.items():
            breakdown[key] = round(breakdown.get(key, 0.0) + value, 9)
        return Cost(usd=add(self.usd, other.usd), credits=add(self.credits, other.credits),
                    estimated=self.estimated or other.estimated, breakdown=breakdown)


class Attempt(BaseModel):
    """One provider tried while serving a call, with what happened."""

    model_config = ConfigDict(defer_build=True)

    provider: str
    model: str | None = None
    outcome: Literal["succeeded", "failed", "skipped"]
    error_type: str | None = None
    error: str | None = None
    status_code: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    wait_s: float = 0.0
    duration_s: float = 0.0


class ImageResult(BaseModel):
    """The outcome of a generate or edit call."""

    model_config = ConfigDict(defer_build=True)

    images: list[Image]
    provider: str
    model: str
    job_id: str | None = None
    cost: Cost = Field(default_factory=Cost)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    cached: bool = False
    warnings: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    #: Text the provider returned next to the images (captions, explanations).
    text: list[str] = Field(default_factory=list)
    #: Provider-specific facts (thought signatures, processing time, output URLs, ...).
    metadata: dict[str, Any] = Field(default_factory=dict)


class Job(BaseModel):
    """A submitted request: ask for its status later, from any process."""

    model_config = ConfigDict(defer_build=True)

    id: str
    provider: str
    native_id: str
    status: JobStatus
    model: str | None = None
    result: ImageResult | None = None
    error: dict[str, Any] | None = None
    request: ImageRequest | None = None
    created_at: datetime = Field(default_factory=_utcnow)
    updated_at: datetime = Field(default_factory=_utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES


def make_job_id(provider: str, native_id: str) -> str:
    return f"{provider}:{native_id}"


def split_job_id(job_id: str) -> tuple[str, str]:
    provider, sep, native = job_id.partition(":")
    if not sep or not provider or not native:
        raise InvalidRequestError(f"job id {job_id!r} is not of the form '<provider>:<native id>'")
    return provider, native
