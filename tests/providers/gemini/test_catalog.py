"""The model data: every model the issue names, with sizes, ratios, tokens, pixels and prices."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imagegen import ModelSpec
from imagegen_gemini import GeminiProvider
from imagegen_gemini._catalog import IMAGE_RATE, expected_pixels, tokens_per_image

MODELS = {spec.id: spec for spec in GeminiProvider.models()}


def test_the_issue_models_and_their_preview_ids_are_there() -> None:
    names = {name for spec in MODELS.values() for name in spec.names}
    for name in ("gemini-2.5-flash-image", "gemini-2.5-flash-image-preview", "gemini-3-pro-image",
                 "gemini-3-pro-image-preview", "gemini-3.1-flash-image", "gemini-3.1-flash-image-preview",
                 "gemini-3.1-flash-lite-image", "gemini-nano-banana-2.1"):
        assert name in names


@pytest.mark.parametrize("spec", MODELS.values(), ids=lambda s: s.id)
def test_every_model_has_sourced_prices_and_tables(spec: ModelSpec) -> None:
    assert spec.price is not None and spec.price.source and spec.price.as_of
    assert spec.price.batch_discount == 0.5
    for key in ("input_per_mtok", "text_output_per_mtok", "image_output_per_mtok"):
        assert spec.price.rates[key] > 0
    assert spec.max_images_per_call == 1
    assert spec.max_reference_images >= 3 and spec.supports_edit and not spec.supports_mask
    for size in spec.sizes or ["*"]:
        assert tokens_per_image(spec, size if spec.sizes else None) > 0
        for ratio in spec.aspect_ratios:
            width, height = expected_pixels(spec, ratio, size if spec.sizes else None)
            want_w, want_h = (int(x) for x in ratio.split(":"))
            assert abs(width / height - want_w / want_h) < 0.08, (size, ratio, width, height)


@pytest.mark.parametrize("spec", MODELS.values(), ids=lambda s: s.id)
def test_published_per_image_prices_match_tokens_times_rate(spec: ModelSpec) -> None:
    assert spec.price is not None
    for size, usd in spec.price.per_image_usd.items():
        from_tokens = tokens_per_image(spec, None if size == "*" else size) * spec.price.rates[IMAGE_RATE] / 1e6
        assert from_tokens == pytest.approx(usd, abs=0.001), size


def test_documented_pixel_sizes() -> None:
    pro, flash = MODELS["gemini-3-pro-image"], MODELS["gemini-3.1-flash-image"]
    assert expected_pixels(pro, "16:9", "4K") == (5504, 3072)
    assert expected_pixels(pro, "21:9", "1K") == (1584, 672)
    assert expected_pixels(flash, "21:9", "512") == (792, 336)  # not the "792x168" typo
    assert expected_pixels(flash, "1:8", "4K") == (1536, 12288)
    assert expected_pixels(flash, "16:9", "2K") == (2752, 1536)  # inherited from the Pro table
    assert expected_pixels(MODELS["gemini-2.5-flash-image"], "9:16", None) == (768, 1344)
    assert expected_pixels(pro, None, "1K") == (1408, 768)  # what 3.x does with no ratio


def test_sizes_and_ratios_per_model() -> None:
    assert MODELS["gemini-2.5-flash-image"].sizes == []
    assert MODELS["gemini-3-pro-image"].sizes == ["1K", "2K", "4K"]
    assert MODELS["gemini-3.1-flash-image"].sizes == ["512", "1K", "2K", "4K"]
    assert MODELS["gemini-3.1-flash-lite-image"].sizes == ["1K"]
    assert "512" not in MODELS["gemini-nano-banana-2.1"].sizes
    assert len(MODELS["gemini-3.1-flash-image"].aspect_ratios) == 14
    assert len(MODELS["gemini-3-pro-image"].aspect_ratios) == 10
    assert MODELS["gemini-3.1-flash-image"].extra["tokens_per_image"]["2K"] == 1680


def test_shut_down_model_names_its_replacement() -> None:
    flash = MODELS["gemini-3.1-flash-image"]
    assert flash.deprecated and "2026-10-29" in flash.deprecated and "gemini-nano-banana-2.1" in flash.deprecated
    assert flash.extra["replacement"] == "gemini-nano-banana-2.1"


def test_default_model_is_current() -> None:
    assert GeminiProvider.default_model() == "gemini-nano-banana-2.1"
    assert not MODELS[GeminiProvider.default_model()].deprecated


def test_plugin_import_is_light() -> None:
    code = ("import sys, imagegen_gemini.plugin, imagegen_gemini;"
            "from imagegen_gemini import GeminiProvider; GeminiProvider.models();"
            "heavy = [m for m in ('google.genai', 'starlette', 'uvicorn') if m in sys.modules];"
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_registered_through_the_entry_point() -> None:
    from imagegen._plugins import PluginRegistry

    assert PluginRegistry().provider_class("gemini") is GeminiProvider
    assert GeminiProvider.emulator == "imagegen_gemini.emulator:create_emulator"
