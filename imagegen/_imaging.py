"""Reading real facts (format, width, height) out of image bytes.

Sizes are never taken from a provider's tables or its JSON: the bytes decide.
Pillow is imported on first use so that ``import imagegen`` stays cheap.
"""

from __future__ import annotations

import io
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
