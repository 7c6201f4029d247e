"""The OpenAI image models as data: loading ``models.toml``, lifecycle, sizes and token tables.

Everything the provider, its price book and its emulator know about a model comes from the
data file; this module reads it and applies the size rules of the spec (section 4.2).

Sizes. A request's ``size`` may be a wire size (``"1536x864"``, ``"auto"``) or a tier
(``"1K"``, ``"2K"``, ``"4K"``) that, with ``aspect_ratio`` (default 1:1), becomes a wire size:
the tier's long edge (1024, 2048, 3840) at that ratio, both edges rounded to multiples of 16,
grown to the model's pixel minimum when too small. GPT Image 2 and later take any size within
the limits; a tier that falls outside them (4K square: 3840x3840 is 14.7 MP, over the 8.3 MP
cap) is refused with the nearest sizes that do exist, so a route skips to a provider that can.
The 1.x models have three sizes: 1:1, 3:2 and 2:3 at "1K".
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from importlib import resources

from imagegen import ImageRequest, ModelSpec, UnsupportedFeatureError
from imagegen.provider import load_models

__all__ = ["MAX_EDGE", "MAX_PIXELS", "MAX_RATIO", "MIN_PIXELS", "TIERS", "check_lifecycle", "load_catalog",
           "output_tokens", "parse_wh", "wire_size"]

#: gpt-image-2 and later (the image guide and the generate reference): edges multiples of 16, <= 3840, ratio <= 3:1.
EDGE_STEP = 16
MAX_EDGE = 3840
MAX_RATIO = 3.0
MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400
#: A tier's long edge.
TIERS = {"1K": 1024, "2K": 2048, "4K": 3840}
#: 1.x models: the three sizes, by aspect ratio.
FIXED_BY_RATIO = {"1:1": "1024x1024", "3:2": "1536x1024", "2:3": "1024x1536"}
#: See ``output_tokens``.
SQRT_RULE_MARGIN = 1.02
_WH = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_RATIO = re.compile(r"^(\d{1,3}):(\d{1,3})$")


@functools.cache
def load_catalog() -> tuple[ModelSpec, ...]:
    """The models of ``models.toml``. Cached: the file ships with the code."""
    return tuple(load_models(resources.files(__package__).joinpath("models.toml")))


def family(spec: ModelSpec) -> str:
    return str(spec.extra.get("family", "gpt2"))


def check_lifecycle(spec: ModelSpec, today: dt.date, *, provider: str) -> list[str]:
    """Refuse a model OpenAI has shut down (naming its replacement); warn about one that will be."""
    shutdown: dt.date | None = spec.extra.get("shutdown")
    replacement = spec.extra.get("replacement", "a current model")
    if shutdown is not None and today >= shutdown:
        raise UnsupportedFeatureError(
            f"{provider}/{spec.id} was shut down by OpenAI on {shutdown.isoformat()}; use {replacement} "
            f"instead (model=\"{replacement}\", or set model = \"{replacement}\" under [providers.{provider}])")
    if shutdown is not None:
        return [f"{provider}/{spec.id} shuts down on {shutdown.isoformat()}; move to {replacement}"]
    return []


def parse_wh(size: str) -> tuple[int, int] | None:
    match = _WH.match(size)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _ratio(text: str) -> tuple[int, int]:
    match = _RATIO.match(text)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise UnsupportedFeatureError(f"aspect ratio {text!r} is not of the form W:H (e.g. 16:9)")
    return int(match.group(1)), int(match.group(2))


def free_size_problem(width: int, height: int) -> str | None:
    """Why ``width`` x ``height`` is not a valid gpt-image-2 size, or None."""
    if width % EDGE_STEP or height % EDGE_STEP:
        return f"both edges must be multiples of {EDGE_STEP}"
    if max(width, height) > MAX_EDGE:
        return f"the longest edge may be at most {MAX_EDGE}"
    if max(width, height) / min(width, height) > MAX_RATIO:
        return "the long:short ratio may be at most 3:1"
    if not MIN_PIXELS <= width * height <= MAX_PIXELS:
        return f"the image must have {MIN_PIXELS:,} to {MAX_PIXELS:,} pixels (it has {width * height:,})"
    return None


def _round16(value: float) -> int:
    return max(EDGE_STEP, round(value / EDGE_STEP) * EDGE_STEP)


def tier_size(tier: str, ratio: str) -> tuple[int, int]:
    """The wire size of a tier at a ratio (before validation)."""
    rw, rh = _ratio(ratio)
    edge = TIERS[tier]
    width, height = (edge, _round16(edge * rh / rw)) if rw >= rh else (_round16(edge * rw / rh), edge)
    if width * height < MIN_PIXELS:
        grow = math.sqrt(MIN_PIXELS / (width * height))
        width, height = (math.ceil(width * grow / EDGE_STEP) * EDGE_STEP,
                         math.ceil(height * grow / EDGE_STEP) * EDGE_STEP)
    return width, height


def _largest_at(ratio: str) -> str:
    rw, rh = _ratio(ratio)
    scale = math.sqrt(MAX_PIXELS / (rw * rh))
    width, height = (int(rw * scale) // EDGE_STEP * EDGE_STEP, int(rh * scale) // EDGE_STEP * EDGE_STEP)
    while max(width, height) > MAX_EDGE:
        width, height = width - EDGE_STEP * (width >= height), height - EDGE_STEP * (height > width)
    return f"{width}x{height}"


def wire_size(request: ImageRequest, spec: ModelSpec, *, provider: str) -> str:
    """The ``size`` to send for ``request`` (``"auto"`` when neither size nor ratio is given)."""
    where = f"{provider}/{spec.id}"
    size, ratio = request.size, request.aspect_ratio
    if size is not None and parse_wh(size) is not None and ratio is not None:
        raise UnsupportedFeatureError(
            f"size {size!r} already fixes the shape; leave aspect_ratio unset, or give a tier "
            f"(size=\"1K\"/\"2K\"/\"4K\") with aspect_ratio={ratio!r}")
    kind = family(spec)
    if kind == "gpt2":
        return _free_size(size, ratio, where)
    if kind == "gpt1":
        return _fixed_size(size, ratio, spec, where)
    if size is None and ratio is None:
        return spec.sizes[0]
    if size in spec.sizes and ratio is None:
        return size
    raise UnsupportedFeatureError(f"size {size!r} is not supported by {where}; use one of {', '.join(spec.sizes)}")


def _free_size(size: str | None, ratio: str | None, where: str) -> str:
    if size is None and ratio is None:
        return "auto"
    if size == "auto" and ratio is None:
        return size
    if size is None or size in TIERS:
        tier, shape = size or "1K", ratio or "1:1"
        rw, rh = _ratio(shape)
        if max(rw, rh) / min(rw, rh) > MAX_RATIO:
            raise UnsupportedFeatureError(
                f"aspect ratio {shape} is not supported by {where}: the long:short ratio may be at most 3:1")
        width, height = tier_size(tier, shape)
        problem = free_size_problem(width, height)
        if problem is not None:
            raise UnsupportedFeatureError(
                f"{tier} at {shape} would be {width}x{height}, which {where} cannot make ({problem}); "
                f"4K exists only at 16:9 or wider (3840x2160); the largest {shape} size is {_largest_at(shape)}")
        return f"{width}x{height}"
    parsed = parse_wh(size)
    if parsed is None:
        raise UnsupportedFeatureError(
            f"size {size!r} is not supported by {where}; give WIDTHxHEIGHT (e.g. 1536x864), \"auto\", or a "
            "tier 1K/2K/4K with an aspect_ratio")
    problem = free_size_problem(*parsed)
    if problem is not None:
        raise UnsupportedFeatureError(f"size {size!r} is not supported by {where}: {problem}")
    return size


def _fixed_size(size: str | None, ratio: str | None, spec: ModelSpec, where: str) -> str:
    choices = "1024x1024, 1536x1024, 1024x1536 or auto (or 1K with aspect_ratio 1:1, 3:2 or 2:3)"
    if size is None and ratio is None:
        return "auto"
    if size in ("auto", *FIXED_BY_RATIO.values()) and ratio is None:
        return size
    if size in (None, "1K") and ratio in (None, *FIXED_BY_RATIO):
        return FIXED_BY_RATIO[ratio or "1:1"]
    what = f"size {size!r}" + (f" at aspect ratio {ratio}" if ratio else "")
    raise UnsupportedFeatureError(f"{what} is not supported by {where}; use {choices}")


def output_tokens(spec: ModelSpec, quality: str, size: str) -> int:
    """Image output tokens one image is expected to cost (for estimates and the emulator).

    The table's figure when it has one; otherwise an upper bound: the 1024x1024 figure scaled
    by the square root of the pixel ratio, plus 2% (every calculator reading for gpt-image-2 is
    at or below it: 2048x2048 reads 14,272, 1.6% above the plain rule, and non-square sizes cost
    fewer tokens than squares of the same area).
    """
    tables: dict[str, dict[str, int]] = spec.extra.get("output_tokens", {})
    factor = float(spec.extra.get("quality_factor", {}).get(quality, 1.0))
    base_quality = "high" if quality in ("auto", "xhigh", "max") or quality not in tables else quality
    table = tables.get(base_quality, {})
    if size in table:
        return round(table[size] * factor)
    anchor = table.get("1024x1024")
    parsed = parse_wh(size)
    if anchor is None:
        return 0
    if parsed is None:
        return round(anchor * factor)
    return math.ceil(anchor * math.sqrt(parsed[0] * parsed[1] / (1024 * 1024)) * SQRT_RULE_MARGIN * factor)
