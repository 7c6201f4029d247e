"""Money: the estimate before a call (per-image token tables) and the actual cost after it
(``usage`` tokens at the model's rates; DALL-E, which reports no usage: its per-image price).

    cost = text_in * p_text_in + image_in * p_image_in + image_out * p_image_out (+ text_out * p_text_out)

Each partial image of a stream adds 100 image output tokens (the image guide); the estimate counts them,
and the actual cost is whatever ``usage`` reports (whether the vendor's ``usage`` includes the
surcharge is UNKNOWN; the emulator includes it).
"""

from __future__ import annotations

import math

from imagegen import Cost, ImageRequest, ModelSpec, Usage

from ._catalog import family, output_tokens, parse_wh

__all__ = ["PARTIAL_IMAGE_TOKENS", "cost_of", "estimate_cost", "flat_cost"]

PARTIAL_IMAGE_TOKENS = 100
#: The wire size assumed for estimates when the API chooses (``auto``).
AUTO_SIZE = "1024x1024"
#: Estimated text tokens of a prompt: ~4 characters a token plus the fixed overhead seen in
#: the recordings ("a siamese cat" = 10 tokens).
PROMPT_OVERHEAD_TOKENS = 7


def cost_of(usage: Usage, spec: ModelSpec) -> Cost:
    """The actual cost of an answer's ``usage``."""
    extra = usage.extra
    parts = {
        "text_input": extra.get("input_text_tokens", 0) * spec.rate("text_input_per_mtok"),
        "image_input": extra.get("input_image_tokens", 0) * spec.rate("image_input_per_mtok"),
        "image_output": (usage.image_tokens or 0) * spec.rate("image_output_per_mtok"),
        "text_output": (usage.text_tokens or 0) * spec.rate("text_output_per_mtok"),
    }
    breakdown = {key: round(value / 1e6, 9) for key, value in parts.items()}
    return Cost(usd=round(math.fsum(breakdown.values()), 9), estimated=False, breakdown=breakdown)


def flat_cost(spec: ModelSpec, quality: str | None, size: str | None, images: int) -> Cost:
    """DALL-E: the per-image list price times the images delivered."""
    tables = spec.extra.get("per_image_usd", {})
    table = tables.get(quality or "standard") or tables.get("standard") or {}
    usd = table.get(size or spec.sizes[0])
    if usd is None:
        return Cost(estimated=True)
    return Cost(usd=round(usd * images, 9), estimated=False, breakdown={"images": round(usd * images, 9)})


def estimate_cost(request: ImageRequest, spec: ModelSpec, size: str, *, partials: int = 0) -> Cost:
    """Expected cost before the call. ``auto`` quality is priced as high (the API may pick it:
    the same request was billed medium one day and high another), ``auto`` size as 1024x1024."""
    quality = str(request.options.get("quality", "auto"))
    if family(spec).startswith("dalle"):
        cost = flat_cost(spec, None if quality == "auto" else quality, size, request.n)
        return cost.model_copy(update={"estimated": True})
    wire = AUTO_SIZE if parse_wh(size) is None else size
    per_image = output_tokens(spec, quality, wire) + PARTIAL_IMAGE_TOKENS * partials
    prompt_tokens = math.ceil(len(request.prompt) / 4) + PROMPT_OVERHEAD_TOKENS
    image_tokens = len(request.images) * int(spec.extra.get("input_tokens_per_image", 0))
    text_out = int(spec.extra.get("text_output_tokens", 0))
    parts = {
        "text_input": prompt_tokens * spec.rate("text_input_per_mtok"),
        "image_input": image_tokens * spec.rate("image_input_per_mtok"),
        "image_output": per_image * request.n * spec.rate("image_output_per_mtok"),
        "text_output": text_out * spec.rate("text_output_per_mtok"),
    }
    breakdown = {key: round(value / 1e6, 9) for key, value in parts.items()}
    return Cost(usd=round(math.fsum(breakdown.values()), 9), estimated=True, breakdown=breakdown)
