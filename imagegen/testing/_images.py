"""Deterministic synthetic images for emulators.

Emulators must return real, decodable images of the requested size so that client code which
reads dimensions and format from the bytes (as imagegen does) is exercised for real. They must
also be cheap at 4K and above, so the picture is built from shapes that compress well: a
horizontal two-colour gradient with a few seeded rectangles and ellipses.
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageFont

__all__ = ["synth_image"]

_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
# Far above any real provider's output (about 36 MP); a guard against typos like 40960 x 40960.
_MAX_PIXELS = 100_000_000
# Palette layout: gradient entries first, then fixed entries for shapes and the label.
_GRADIENT_STEPS = 240
_SHAPES = 6
_INK = _GRADIENT_STEPS + _SHAPES
_PAPER = _INK + 1


def synth_image(
    width: int,
    height: int,
    fmt: str = "png",
    *,
    seed: int = 0,
    label: str | None = None,
) -> bytes:
    """Return the bytes of a real image of exactly `width` x `height` pixels.

    `fmt` is ``"png"``, ``"jpeg"`` (or ``"jpg"``) or ``"webp"``. The same arguments always
    give the same bytes; `seed` picks the colours and shapes, so emulators can hand out
    different images for different requests. `label`, when given, is drawn on the image.

    PNGs are palette images: encoding a 16-megapixel truecolour PNG takes about 0.4 s, a
    palette PNG of the same size about 0.07 s, and decoders report the same size and format.
    Recent results are memoized, so repeated calls are free.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    if isinstance(height, bool) or not isinstance(height, int) or height < 1:
        raise ValueError(f"height must be a positive int, got {height!r}")
    if width * height > _MAX_PIXELS:
        raise ValueError(f"{width}x{height} is over the {_MAX_PIXELS:,}-pixel limit")
    pil_format = _FORMATS.get(fmt.lower())
    if pil_format is None:
        raise ValueError(f"unsupported image format {fmt!r}; use one of png, jpeg, jpg, webp")
    return _render(width, height, pil_format, seed, label)


@functools.lru_cache(maxsize=16)
def _render(width: int, height: int, pil_format: str, seed: int, label: str | None) -> bytes:
    rng = random.Random(seed)
    image = _gradient(width, height, rng)
    _draw_shapes(image, rng)
    if label:
        _draw_label(image, label)
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pil_format == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    else:
        # method=0 is libwebp's fastest effort; quality barely matters for flat shapes.
        image.convert("RGB").save(buffer, "WEBP", quality=80, method=0)
    return buffer.getvalue()


def _gradient(width: int, height: int, rng: random.Random) -> Image.Image:
    """A palette image whose indices run left to right through a seeded two-colour ramp."""
    start, end = _colour(rng), _colour(rng)
    steps = _GRADIENT_STEPS - 1
    palette = [
        round(a + (b - a) * i / steps) for i in range(_GRADIENT_STEPS) for a, b in zip(start, end, strict=True)
    ]
    palette += [c for _ in range(_SHAPES) for c in _colour(rng)]
    palette += [20, 20, 20, 245, 245, 245]  # label ink and paper
    ramp = Image.linear_gradient("L").rotate(90).resize((width, 1), Image.Resampling.BILINEAR)
    ramp = ramp.point(lambda v: v * steps // 255)
    # Stretching one row with NEAREST is far cheaper than computing every pixel.
    indices = ramp.resize((width, height), Image.Resampling.NEAREST)
    image = Image.frombytes("P", (width, height), indices.tobytes())
    image.putpalette(palette)
    return image


def _draw_shapes(image: Image.Image, rng: random.Random) -> None:
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for index in range(_SHAPES):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = x0 + rng.randrange(max(1, width // 12), max(2, width // 3))
        y1 = y0 + rng.randrange(max(1, height // 12), max(2, height // 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=_GRADIENT_STEPS + index)


def _draw_label(image: Image.Image, label: str) -> None:
    width, height = image.size
    font = _font(max(8, min(width, height) // 16))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    margin = max(2, (bottom - top) // 4)
    draw.rectangle((0, 0, right - left + 2 * margin, bottom - top + 2 * margin), fill=_PAPER)
    draw.text((margin - left, margin - top), label, font=font, fill=_INK)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Without FreeType, Pillow falls back to its fixed-size bitmap font.
    return ImageFont.load_default(size=size)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)
