"""An output image counts only when whole: every truncation of it is refused."""

from __future__ import annotations

import io

import pytest

from imagegen import InvalidImageError
from imagegen._outputs import check_whole
from imagegen.testing import synth_image


def _image(fmt: str) -> bytes:
    if fmt != "gif":
        return synth_image(96, 64, fmt, seed=7)
    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((96, 64)).save(out, "GIF")
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif"])
def test_a_whole_image_passes_and_every_cut_of_it_fails(fmt):
    data = _image(fmt)
    check_whole(data)
    step = max(1, len(data) // 200)
    for cut in [*range(1, len(data), step), *range(len(data) - 16, len(data))]:
        with pytest.raises(InvalidImageError):
            check_whole(data[:cut])


def test_a_png_with_a_damaged_chunk_fails():
    data = bytearray(synth_image(96, 64, "png", seed=7))
    middle = data.index(b"IDAT") + 40
    data[middle] ^= 0xFF  # one byte flipped in transit: the chunk's CRC no longer matches
    with pytest.raises(InvalidImageError):
        check_whole(bytes(data))


def test_something_that_is_no_image_fails():
    with pytest.raises(InvalidImageError):
        check_whole(b"<html><body>AccessDenied</body></html>")
