import io

import pytest
from PIL import Image as PILImage

from imagegen import Image, ImageRequest, InputImage, InvalidImageError, InvalidRequestError


def png(width=16, height=8, fmt="PNG"):
    buf = io.BytesIO()
    PILImage.new("RGB", (width, height), (10, 20, 30)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(InvalidRequestError, match="prompt is empty"):
        ImageRequest.build(prompt=prompt)


def test_huge_prompt_is_refused():
    with pytest.raises(InvalidRequestError, match="over the 32000 allowed"):
        ImageRequest.build(prompt="x" * 1_000_000)


def test_control_characters_are_named():
    with pytest.raises(InvalidRequestError, match="U\\+0000"):
        ImageRequest.build(prompt="a\x00b")
    assert ImageRequest.build(prompt="line one\nline two\ttab").prompt.startswith("line one")


@pytest.mark.parametrize("n", [0, -1, 65, 10**9])
def test_n_out_of_range(n):
    with pytest.raises(InvalidRequestError, match="n must be between 1 and 64"):
        ImageRequest.build(prompt="x", n=n)


def test_unknown_request_field_is_an_error():
    with pytest.raises(InvalidRequestError, match="colour"):
        ImageRequest.build(prompt="x", colour="red")


def test_images_are_read_and_probed(tmp_path):
    path = tmp_path / "in.png"
    path.write_bytes(png(40, 20))
    request = ImageRequest.build(prompt="x", images=[path, png(8, 8, "JPEG"), "https://example.com/a.png"])
    first, second, third = request.images
    assert (first.width, first.height, first.mime_type, first.name) == (40, 20, "image/png", "in.png")
    assert second.mime_type == "image/jpeg"
    assert third.url == "https://example.com/a.png" and third.data is None
    assert "data" not in repr(first) or "b'" not in repr(first)


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (b"%PDF-1.4 not an image", "not a readable image"),
    (png(64, 64)[:60], "not a readable image"),
])
def test_bad_input_images(data, match):
    with pytest.raises(InvalidImageError, match=match):
        ImageRequest.build(prompt="x", images=[data])


def test_a_hand_built_input_image_is_read_from_its_bytes():
    buf = io.BytesIO()
    PILImage.new("RGB", (30, 20), "blue").save(buf, "JPEG")
    request = ImageRequest.build(prompt="x", images=[InputImage(data=buf.getvalue(), name="a.jpg")])
    image = request.images[0]
    assert (image.mime_type, image.width, image.height, image.name) == ("image/jpeg", 30, 20, "a.jpg")
    declared = InputImage(data=buf.getvalue(), mime_type="image/jpeg")
    assert InputImage.coerce(declared) is declared
    with pytest.raises(InvalidImageError, match="not a readable image"):
        ImageRequest.build(prompt="x", images=[InputImage(data=b"%PDF-1.4 not an image")])


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InvalidImageError, match="nope.png"):
        ImageRequest.build(prompt="x", images=[tmp_path / "nope.png"])


def test_decompression_bomb_is_refused():
    buf = io.BytesIO()
    PILImage.new("1", (20000, 20000)).save(buf, "PNG")
    with pytest.raises(InvalidImageError, match="pixels|bomb"):
        InputImage.coerce(buf.getvalue())


def test_image_dimensions_come_from_bytes_and_save(tmp_path):
    image = Image.from_bytes(png(33, 17))
    assert (image.width, image.height, image.mime_type) == (33, 17, "image/png")
    saved = image.save(tmp_path)
    assert saved.suffix == ".png" and saved.read_bytes() == image.data
    named = image.save(tmp_path / "sub" / "x.png")
    assert named.exists()
    assert "data=" not in repr(image)


def test_image_json_round_trip():
    image = Image.from_bytes(png())
    assert Image.model_validate_json(image.model_dump_json()) == image


def test_the_control_character_check_matches_unicode_on_every_code_point():
    # The prompt check finds control characters with a pattern; Unicode's category is the truth.
    import sys
    import unicodedata

    from imagegen._models import _CONTROL

    for point in range(sys.maxunicode + 1):
        ch = chr(point)
        expected = unicodedata.category(ch) == "Cc" and ch not in "\n\r\t"
        assert (_CONTROL.fullmatch(ch) is not None) == expected, hex(point)
