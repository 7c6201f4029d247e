"""A billed job's outputs: fetched under the call's deadline, and fully decoded before they count.

``fetch_outputs`` is what providers call to download a finished job's images; the pipeline
hears of the job before the first byte (``imagegen._http.CallScope``), so the charge and the
job are on record whatever the download does. ``check_decodes`` is the pipeline's last look
at every result: an image that is not whole (a truncated PNG or JPEG with a valid header, say)
is not an image the caller paid for, so it is ``OutputUnavailableError`` -- never a reason to
pay again, and ``wait(job_id)`` can fetch the outputs later.
"""

from __future__ import annotations

import asyncio
import functools
import io

import httpx
import pydantic_core
from pydantic import ConfigDict, TypeAdapter

from ._errors import (
    InvalidImageError,
    InvalidResponseError,
    OutputUnavailableError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from ._http import DownloadPolicy, current_scope, fetch_image
from ._imaging import probe_image
from ._models import Image, ImageResult

__all__ = ["OUTPUT_FETCH_RETRIES", "check_decodes", "check_whole", "decode_base64", "decode_image", "fetch_outputs"]

#: A PNG's last chunk, whole: length 0, type IEND, its CRC.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: Checking more bytes than this (outside JPEGs) moves to a worker thread, off the event loop.
_DECODE_ON_LOOP_BYTES = 512 * 1024

#: Transient download failures (5xx, 429, dropped connections) are tried again this many times.
OUTPUT_FETCH_RETRIES = 2


@functools.cache
def _base64_reader() -> TypeAdapter[bytes]:
    """Strict base64 in pydantic-core (Rust): about twice as fast as ``binascii`` on the megabytes
    of a 2K/4K image (benchmarks/results/gemini_overhead.md). Built on first use, not at import."""
    return TypeAdapter(bytes, config=ConfigDict(val_json_bytes="base64"))


def decode_base64(text: object) -> bytes:
    """Strict base64 (a ``data:`` URL prefix tolerated); ValueError for anything else. Padding is
    required, so an image cut off mid-answer fails here rather than decoding to half an image."""
    if isinstance(text, str) and text.startswith("data:"):
        text = text.partition(",")[2]
    # A quote or backslash would not survive as the JSON string literal pydantic-core reads.
    if not isinstance(text, str) or not text or len(text) % 4 or '"' in text or "\\" in text:
        raise ValueError("invalid base64 data (empty, not text, or cut short)")
    try:
        return _base64_reader().validate_json(f'"{text}"')
    except pydantic_core.ValidationError as exc:
        raise ValueError(f"invalid base64 data: {exc.errors()[0]['msg']}") from None


def decode_image(data: object, *, provider: str, what: str = "output image", declared: str | None = None,
                 warnings: list[str] | None = None) -> Image:
    """An image a vendor answered inline, as bytes or base64 text. Format and size come from the
    bytes (a different ``declared`` MIME type adds a warning); bytes that are not a readable
    image are the vendor's fault, not the caller's input: ``InvalidResponseError``."""
    try:
        raw = data if isinstance(data, bytes) else decode_base64(data)
        image = Image.from_bytes(raw, what=f"{provider} {what}")
    except (ValueError, InvalidImageError) as exc:
        raise InvalidResponseError(f"{provider} returned an unreadable image ({what}): {exc}", provider=provider,
                                   status_code=200) from exc
    if declared and declared.lower() != image.mime_type and warnings is not None:
        warnings.append(f"{provider} declared {declared.lower()} but the bytes are {image.mime_type}; "
                        "the bytes were trusted")
    return image


async def fetch_outputs(http: httpx.AsyncClient, urls: list[str], *, provider: str, job_id: str | None,
                        policy: DownloadPolicy | None = None) -> list[Image]:
    """Download a finished job's output images: ``fetch_image`` for each, for a job already billed.

    The call's pipeline hears of the job (``CallScope.on_outputs``) before the first byte is
    fetched. A transient failure is tried again (``OUTPUT_FETCH_RETRIES`` times, within the
    deadline); any failure then is ``OutputUnavailableError`` carrying ``job_id`` and ``urls``:
    never a reason to submit (and pay) again, and ``wait(job_id)`` can fetch them later.
    """
    scope = current_scope()
    if scope is not None and scope.on_outputs is not None and job_id is not None:
        scope.on_outputs(job_id, list(urls))
    try:
        return list(await asyncio.gather(*(_fetch_retrying(http, url, provider, policy) for url in urls)))
    except ProviderError as exc:
        raise OutputUnavailableError(
            f"{provider} finished job {job_id} (billed), but its output could not be fetched: {exc.message}; "
            f"wait({job_id!r}) fetches it again later without paying again",
            provider=provider, job_id=job_id, urls=list(urls), status_code=exc.status_code) from exc


async def _fetch_retrying(http: httpx.AsyncClient, url: str, provider: str, policy: DownloadPolicy | None) -> Image:
    for attempt in range(OUTPUT_FETCH_RETRIES + 1):
        try:
            return await fetch_image(http, url, provider=provider, policy=policy)
        except ProviderTimeoutError:
            raise  # the deadline (or the download's own limit) has passed: no time to try again
        except ProviderUnavailableError:
            if attempt == OUTPUT_FETCH_RETRIES:
                raise
            await asyncio.sleep(0.1 * 2 ** attempt)
    raise AssertionError("unreachable")  # pragma: no cover



async def check_decodes(result: ImageResult) -> None:
    """Raise ``OutputUnavailableError`` unless every image of ``result`` is whole (``check_whole``)."""
    # A JPEG's check reads its header and its last bytes: on the loop whatever its size. The
    # others read (or decode) everything: a worker thread when that is much.
    heavy = sum(len(image.data) for image in result.images if image.mime_type != "image/jpeg")
    if heavy > _DECODE_ON_LOOP_BYTES:
        await asyncio.to_thread(_check_all, result)
    else:
        _check_all(result)


def check_whole(data: bytes, *, what: str = "image") -> None:
    """Raise ``InvalidImageError`` unless ``data`` is a whole image, not just one with a valid header.

    PNG: every chunk read and its CRC checked, up to ``IEND`` (Pillow's ``verify``); JPEG: its
    end-of-image marker present (a transfer cut short loses it; Pillow's ``verify`` reads no
    JPEG data); WebP: its structure read to the end; GIF: that too, and its trailer byte. Other formats are decoded in
    full. A full decode of every output would catch nothing more that a transfer can break,
    and costs about as much as a whole local call (a 4K JPEG: hundreds of ms, against under
    a millisecond for these checks).
    """
    from PIL import Image as PILImage  # deferred: keeps `import imagegen` light

    info = probe_image(data, what=what)
    if info.mime_type == "image/jpeg":
        if not data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9"):
            raise InvalidImageError(f"{what} is not a readable image: the JPEG has no end (cut short)")
        return
    if info.mime_type not in ("image/png", "image/webp", "image/gif"):
        probe_image(data, what=what, verify=True)
        return
    if info.mime_type == "image/png" and _PNG_END not in data[-64:]:
        raise InvalidImageError(f"{what} is not a readable image: the PNG has no end (cut short)")
    if info.mime_type == "image/gif" and not data.endswith(b"\x3b"):
        raise InvalidImageError(f"{what} is not a readable image: the GIF has no trailer (cut short)")
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            image.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{what} is not a readable image ({type(exc).__name__}: {exc})") from exc


def _check_all(result: ImageResult) -> None:
    for number, image in enumerate(result.images, 1):
        try:
            check_whole(image.data, what=f"output image {number}")
        except InvalidImageError as exc:
            raise _undecodable(result, exc.message) from exc


def _undecodable(result: ImageResult, why: str) -> OutputUnavailableError:
    urls = [i.url for i in result.images if i.url]
    again = (f"wait({result.job_id!r}) fetches it again later without paying again" if urls else
             "the provider answered it inline, so it cannot be fetched again")
    return OutputUnavailableError(
        f"{result.provider} finished job {result.job_id} (billed), but {why}; {again}",
        provider=result.provider, job_id=result.job_id, urls=urls)
