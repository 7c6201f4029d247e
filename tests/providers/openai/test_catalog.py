"""The model data: lifecycle, sizes, tiers and the token tables behind estimates."""

from __future__ import annotations

import datetime as dt

import pytest

from imagegen import ImageRequest, UnsupportedFeatureError
from imagegen_openai._catalog import check_lifecycle, load_catalog, output_tokens, wire_size

SPECS = {spec.id: spec for spec in load_catalog()}


def size_of(model: str, **fields) -> str:
    return wire_size(ImageRequest(prompt="x", **fields), SPECS[model], provider="openai")


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "auto"),
    ({"size": "1536x864"}, "1536x864"),
    ({"size": "2K", "aspect_ratio": "16:9"}, "2048x1152"),
    ({"size": "4K", "aspect_ratio": "16:9"}, "3840x2160"),
    ({"size": "4K", "aspect_ratio": "9:16"}, "2160x3840"),
    ({"size": "1K", "aspect_ratio": "16:9"}, "1088x608"),  # grown to the 655,360-pixel minimum
    ({"aspect_ratio": "1:1"}, "1024x1024"),
])
def test_free_sizes_and_tiers_on_gpt_image_2(fields, expected):
    assert size_of("gpt-image-2", **fields) == expected


@pytest.mark.parametrize(("fields", "words"), [
    ({"size": "1000x1000"}, "multiples of 16"),
    ({"size": "4000x1008"}, "at most 3840"),
    ({"size": "3600x1008"}, "3:1"),
    ({"size": "512x512"}, "655,360"),
    ({"size": "4K"}, "the largest 1:1 size is 2880x2880"),
    ({"size": "2K", "aspect_ratio": "4:1"}, "at most 3:1"),
    ({"size": "1024x1024", "aspect_ratio": "1:1"}, "leave aspect_ratio unset"),
])
def test_sizes_outside_the_limits_are_refused_naming_what_works(fields, words):
    with pytest.raises(UnsupportedFeatureError, match=words):
        size_of("gpt-image-2", **fields)


def test_one_point_x_models_have_three_sizes():
    assert size_of("gpt-image-1.5", aspect_ratio="3:2") == "1536x1024"
    assert size_of("gpt-image-1.5", size="1024x1536") == "1024x1536"
    with pytest.raises(UnsupportedFeatureError, match="1536x1024"):
        size_of("gpt-image-1.5", size="2K")


def test_shut_down_models_are_refused_with_their_replacement():
    with pytest.raises(UnsupportedFeatureError, match="shut down by OpenAI on 2026-10-23; use gpt-image-2.5-sunburst"):
        check_lifecycle(SPECS["gpt-image-1"], dt.date(2026, 11, 30), provider="openai")
    with pytest.raises(UnsupportedFeatureError, match="2026-05-12; use gpt-image-2"):
        check_lifecycle(SPECS["dall-e-3"], dt.date(2026, 11, 30), provider="openai")
    warnings = check_lifecycle(SPECS["gpt-image-1.5"], dt.date(2026, 11, 30), provider="openai")
    assert warnings == ["openai/gpt-image-1.5 shuts down on 2026-12-01; move to gpt-image-2.6-sunburst"]
    with pytest.raises(UnsupportedFeatureError, match="gpt-image-2.6-sunburst"):
        check_lifecycle(SPECS["gpt-image-1.5"], dt.date(2026, 12, 1), provider="openai")
    assert check_lifecycle(SPECS["gpt-image-2"], dt.date(2030, 1, 1), provider="openai") == []


def test_every_model_has_a_dated_price_or_says_why():
    for spec in load_catalog():
        if spec.price is None:
            assert "UNKNOWN" in spec.description, spec.id
        else:
            assert spec.price.source and spec.price.as_of


def test_token_tables_agree_with_the_published_per_image_prices():
    """The guide's per-image prices are tokens x the image output rate, within a cent's rounding."""
    for spec in load_catalog():
        rate = spec.price.rates.get("image_output_per_mtok") if spec.price else None
        for quality, table in spec.extra.get("per_image_usd", {}).items():
            if rate is None:
                continue
            for size, usd in table.items():
                assert abs(output_tokens(spec, quality, size) * rate / 1e6 - usd) < 0.006, (spec.id, quality, size)


def test_unlisted_sizes_estimate_at_or_above_every_calculator_reading():
    spec = SPECS["gpt-image-2"]
    table = spec.extra["output_tokens"]["high"]
    assert output_tokens(spec, "high", "2048x1152") > 0
    for size, tokens in table.items():
        side = size.split("x")
        bound = table["1024x1024"] * (int(side[0]) * int(side[1]) / 1024 ** 2) ** 0.5 * 1.02
        assert tokens <= bound, size
    assert output_tokens(SPECS["gpt-image-2.5-sunburst"], "max", "1024x1024") == 4 * 7024
