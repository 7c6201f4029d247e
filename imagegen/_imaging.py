"""Reading real facts (format, width, height) out of image bytes.

Sizes are never taken from a provider's tables or its JSON: the bytes decide.
Pillow is imported on first use so that ``import imagegen`` stays cheap.
"""

from __future__ import annotations

import io
import struct
from typing import NamedTuple

from ._errors import InvalidImageError

#: Refuse to decode anything larger than this many pixels (decompression bombs).
MAX_PIXELS = 16384 * 16384

_MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}


class ImageInfo(NamedTuple):
    mime_type: str
    width: int
    height: int


def probe_image(data: bytes, *, what: str = "image", verify: bool = False) -> ImageInfo:
    """Return the MIME type and real dimensions of ``data``.

    Raises ``InvalidImageError`` for empty, unknown, truncated (with ``verify``)
    or absurdly large images. ``verify`` decodes every pixel, which catches
    truncated files at the price of a full decode.
    """
    if not data:
        raise InvalidImageError(f"{what} is empty (0 bytes); pass the bytes of a PNG, JPEG or WebP file")
    if not verify:
        info = _read_header(data)
        if info is not None and info.width * info.height <= MAX_PIXELS:
            return info  # (a huge one goes on to Pillow, whose refusal says why)
    from PIL import Image as PILImage  # deferred: keeps `import imagegen` light

    try:
        with PILImage.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format, img.size
            if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
                raise InvalidImageError(
                    f"{what} claims {width}x{height} pixels, more than the {MAX_PIXELS} allowed; "
                    "pass a smaller image"
                )
            if verify:
                img.load()
    except InvalidImageError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise InvalidImageError(f"{what} is a decompression bomb ({exc}); pass a normal image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"{what} is not a readable image ({type(exc).__name__}: {exc}); "
            "pass a PNG, JPEG or WebP file"
        ) from exc
    mime = _MIME_BY_FORMAT.get(fmt or "", f"image/{(fmt or 'unknown').lower()}")
    return ImageInfo(mime, width, height)


#: File extensions ``Image.save`` writes, and the format each one means.
FORMAT_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF",
                    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def format_for_suffix(suffix: str) -> str | None:
    """The Pillow format a file extension names (None for an extension that names none)."""
    return FORMAT_BY_SUFFIX.get(suffix.lower())


def mime_for_format(fmt: str) -> str:
    return _MIME_BY_FORMAT.get(fmt, f"image/{fmt.lower()}")


def convert_image(data: bytes, fmt: str) -> bytes:
    """Re-encode ``data`` as ``fmt`` (a Pillow format name): lossless for PNG, quality 95 otherwise.

    Formats without transparency (JPEG, BMP) get the image over white instead of its alpha.
    """
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as opened:
        opened.load()
        img: PILImage.Image = opened
        if fmt in ("JPEG", "BMP") and img.mode not in ("RGB", "L"):
            rgba = img.convert("RGBA")
            img = PILImage.new("RGB", rgba.size, "white")
            img.paste(rgba, mask=rgba.getchannel("A"))
        buffer = io.BytesIO()
        options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
        img.save(buffer, fmt, **options)
    return buffer.getvalue()


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: JPEG start-of-frame markers (they carry the size); C4, C8 and CC are other segments.
_JPEG_FRAMES = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def _read_header(data: bytes) -> ImageInfo | None:
    """Format and size of a plain PNG or JPEG read straight from its header (Pillow's Python
    parsers take ~0.1 ms an image, on the event loop, for every output); None for anything
    else or anything unusual, which Pillow then reads."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack_from(">II", data, 16)
        return ImageInfo("image/png", width, height) if width and height else None
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> ImageInfo | None:
    at, end = 2, min(len(data), 1 << 20)  # the frame header comes before the image data
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xDA or 0xD0 <= marker <= 0xD9 or marker == 0x01:
            return None  # image data (or a lone marker) before any frame header: leave it to Pillow
        (length,) = struct.unpack_from(">H", data, at + 2)
        if length < 2:
            return None
        if marker in _JPEG_FRAMES:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, at + 5)
            return ImageInfo("image/jpeg", width, height) if width and height else None
        at += 2 + length
    return None
