"""Money: the estimate before a call (from the tokens-per-image table) and the actual cost
after it (from ``usageMetadata``). No SDK import, so estimating stays cheap and offline."""

from __future__ import annotations

import math

from imagegen import Cost, ImageRequest, ModelSpec, Usage

from ._catalog import IMAGE_RATE, INPUT_RATE, TEXT_RATE, tokens_per_image

__all__ = ["cost_of", "estimate_cost"]


def cost_of(usage: Usage, spec: ModelSpec) -> Cost:
    """Actual cost: image tokens at the image rate, the other output (text and thinking) at the
    text rate, the prompt at the input rate. ``usage.output_tokens`` already includes thinking."""
    input_usd = (usage.input_tokens or 0) * spec.rate(INPUT_RATE) / 1e6
    image_usd = (usage.image_tokens or 0) * spec.rate(IMAGE_RATE) / 1e6
    text_usd = max(0, (usage.output_tokens or 0) - (usage.image_tokens or 0)) * spec.rate(TEXT_RATE) / 1e6
    breakdown = {"input": round(input_usd, 9), "image_output": round(image_usd, 9),
                 "text_output": round(text_usd, 9)}
    return Cost(usd=round(input_usd + image_usd + text_usd, 9), estimated=False, breakdown=breakdown)


def estimate_cost(request: ImageRequest, spec: ModelSpec) -> Cost:
    """Expected cost before the call: image tokens from the table, plus the typical text and
    thinking output and the input (about 4 characters a token, a fixed count per reference image).
    """
    image_tokens = tokens_per_image(spec, request.size)
    text_tokens = int(spec.extra.get("typical_text_output_tokens", 0))
    input_tokens = math.ceil(len(request.prompt) / 4) + len(request.images) * int(
        spec.extra.get("input_tokens_per_image", 258))
    per_call = {
        "input": input_tokens * spec.rate(INPUT_RATE) / 1e6,
        "image_output": image_tokens * spec.rate(IMAGE_RATE) / 1e6,
        "text_output": text_tokens * spec.rate(TEXT_RATE) / 1e6,
    }
    breakdown = {key: round(value * request.n, 9) for key, value in per_call.items()}
    return Cost(usd=round(sum(breakdown.values()), 9), estimated=True, breakdown=breakdown)
