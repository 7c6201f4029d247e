from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from imagegen.testing import _images, synth_image


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("fmt", "pil_format"),
    [("png", "PNG"), ("jpeg", "JPEG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("PNG", "PNG")],
)
def test_returns_a_real_image_of_the_exact_size(fmt: str, pil_format: str) -> None:
    image = _open(synth_image(123, 45, fmt))
    assert image.size == (123, 45)
    assert image.format == pil_format


def test_same_arguments_give_the_same_bytes_even_without_the_memo() -> None:
    first = synth_image(96, 64, "png", seed=3, label="same")
    _images._render.cache_clear()
    assert synth_image(96, 64, "png", seed=3, label="same") == first


def test_seed_and_label_change_the_pixels() -> None:
    base = _open(synth_image(64, 64, seed=1)).convert("RGB").tobytes()
    assert _open(synth_image(64, 64, seed=2)).convert("RGB").tobytes() != base
    assert _open(synth_image(64, 64, seed=1, label="hi")).convert("RGB").tobytes() != base


def test_tiny_images_work() -> None:
    assert _open(synth_image(1, 1, "webp")).size == (1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 10), "width"),
        ((10, -1), "height"),
        ((10.5, 10), "width"),
        ((True, 10), "width"),
        ((10, 10, "gif"), "unsupported image format"),
        ((20_000, 20_000), "pixel limit"),
    ],
)
def test_bad_arguments_raise_value_error(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synth_image(*args)


@pytest.mark.parametrize("size", [(4096, 4096), (5504, 3072)])
def test_large_images_are_cheap(size: tuple[int, int]) -> None:
    _images._render.cache_clear()
    started = time.perf_counter()
    png = synth_image(*size, "png", seed=9, label="4K")
    jpeg = synth_image(*size, "jpeg", seed=9)
    elapsed = time.perf_counter() - started
    assert Image.open(io.BytesIO(png)).size == size
    assert Image.open(io.BytesIO(jpeg)).size == size
    # About 0.2 s on a laptop; the bound only catches a pathological regression.
    assert elapsed < 10
    # Flat shapes compress well, so emulators can hand out 4K images cheaply.
    assert len(png) < 2_000_000
