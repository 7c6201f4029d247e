"""The Gemini image models as data: loading ``models.toml`` and reading its tables.

Everything the provider and the emulator know about a model (sizes, ratios, pixel tables,
tokens per image, token prices) comes from the data file; this module only reads it.
Pixel tables are shared between models in the file (``[pixel_tables.*]``, with ``inherit``)
and resolved here into each model's ``extra["pixels"]``: ``{size: {ratio: (w, h)}}``.
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any

from imagegen import ModelSpec
from imagegen.provider import load_models

__all__ = ["IMAGE_RATE", "INPUT_RATE", "TEXT_RATE", "expected_pixels", "load_catalog", "tokens_per_image"]

#: Keys of ``price.rates`` (``ModelSpec.rate``): USD per million tokens.
INPUT_RATE = "input_per_mtok"
TEXT_RATE = "text_output_per_mtok"
IMAGE_RATE = "image_output_per_mtok"
#: The key used in per-size tables for a model with a single size.
ANY_SIZE = "*"


@functools.cache
def load_catalog() -> tuple[ModelSpec, ...]:
    """The models of ``models.toml``, pixel tables resolved. Cached: the file ships with the code."""
    return tuple(load_models(resources.files(__package__).joinpath("models.toml"), prepare=with_pixels))


def with_pixels(entry: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """A model entry with its pixel table (named in ``extra.pixel_table``) resolved."""
    extra = dict(entry.get("extra", {}))
    extra["pixels"] = _resolve_table(document.get("pixel_tables", {}), extra["pixel_table"])
    return {**entry, "extra": extra}


def _resolve_table(tables: dict[str, Any], name: str, depth: int = 0) -> dict[str, dict[str, tuple[int, int]]]:
    if depth > 5:
        raise ValueError(f"pixel table {name!r} inherits in a loop")
    table = tables[name]
    merged: dict[str, dict[str, tuple[int, int]]] = {}
    if "inherit" in table:
        merged = {size: dict(ratios) for size, ratios in _resolve_table(tables, table["inherit"], depth + 1).items()}
    for size, ratios in table.items():
        if isinstance(ratios, dict):
            merged.setdefault(size, {}).update({ratio: _wxh(value) for ratio, value in ratios.items()})
    for size in table.get("exclude_sizes", []):
        merged.pop(size, None)
    return merged


def _wxh(value: str) -> tuple[int, int]:
    width, _, height = value.partition("x")
    return int(width), int(height)


def _size_key(spec: ModelSpec, size: str | None) -> str:
    return ANY_SIZE if not spec.sizes else (size or spec.default_size or spec.sizes[0])


def tokens_per_image(spec: ModelSpec, size: str | None) -> int:
    """Output IMAGE tokens one image of ``size`` costs (the model's default size when None)."""
    table: dict[str, int] = spec.extra["tokens_per_image"]
    return table.get(_size_key(spec, size), table.get(ANY_SIZE, 0))


def expected_pixels(spec: ModelSpec, aspect_ratio: str | None, size: str | None) -> tuple[int, int]:
    """The documented (or, with no ratio, the observed) width and height: a hint, never a fact.

    Real outputs differ from the tables; results always take their size from the bytes.
    """
    key = _size_key(spec, size)
    if aspect_ratio is None:
        return _wxh(spec.extra["no_ratio_pixels"].get(key) or spec.extra["no_ratio_pixels"][ANY_SIZE])
    pixels: dict[str, dict[str, tuple[int, int]]] = spec.extra["pixels"]
    by_ratio = pixels.get(key) or pixels[ANY_SIZE]
    if aspect_ratio in by_ratio:
        return by_ratio[aspect_ratio]
    # A ratio the table lacks at this size: scale the 1:1 entry to the ratio's shape.
    side = math.sqrt(by_ratio["1:1"][0] * by_ratio["1:1"][1])
    w, _, h = aspect_ratio.partition(":")
    ratio = float(w) / float(h)
    return max(1, round(side * math.sqrt(ratio) / 16) * 16), max(1, round(side / math.sqrt(ratio) / 16) * 16)
