"""The Gemini emulator's request checks: what the API refuses, and the settings it keeps.

Pure functions of the request body and the model; `emulator` calls `check_request` and answers
with what it returns (or the `Reject` it raises).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from imagegen import ModelSpec
from imagegen.testing import Reject

from ._emulator_shapes import (
    CONFIG_FIELDS,
    IMAGE_CONFIG_FIELDS,
    MODALITIES,
    PROTO_RATIOS,
    SIZE_SPELLINGS,
    TOP_FIELDS,
    VERTEX_IMAGE_CONFIG_FIELDS,
    b64decode,
    check_fields,
    check_parts,
)

__all__ = ["Settings", "check_request", "input_shape", "nearest_ratio"]


@dataclass(frozen=True)
class Settings:
    """What a valid request asks of the model."""

    #: the ``aspectRatio`` sent, or ``None``
    ratio: str | None
    #: the effective ``imageSize`` (the model's default when none was sent; None on 2.5 Flash)
    size: str | None
    #: ``responseModalities`` in upper case, or ``None`` when not sent
    modalities: tuple[str, ...] | None
    include_thoughts: bool
    #: width and height of the image being edited, when the request carries one
    input_shape: tuple[int, int] | None
    #: ``tools: [{googleSearch: {}}]`` was sent (answers carry ``groundingMetadata``)
    grounding: bool = False
    #: Vertex's ``imageOutputOptions.mimeType`` (the output format), when sent
    output_mime: str | None = None

    @property
    def text_allowed(self) -> bool:
        return self.modalities is None or "TEXT" in self.modalities


def check_request(body: dict[str, Any], spec: ModelSpec, *, vertex: bool) -> Settings:
    """Validate `body` (already camelCased) as the API does; return the settings it asks for.

    The order of checks follows the spec's suggestion (the real order is not documented).
    """
    check_fields(body, TOP_FIELDS, "")
    if not body.get("contents"):
        raise Reject(400, "* GenerateContentRequest.contents: contents is not specified\n")
    check_parts(body["contents"])
    config = body.get("generationConfig") or {}
    check_fields(config, CONFIG_FIELDS, "generation_config")
    modalities = _modalities(config.get("responseModalities"))
    image_config = config.get("imageConfig") or {}
    check_fields(image_config, VERTEX_IMAGE_CONFIG_FIELDS if vertex else IMAGE_CONFIG_FIELDS,
                 "generation_config.image_config")
    ratio = _ratio(image_config.get("aspectRatio"), spec)
    size = _size(image_config.get("imageSize"), spec)
    if int(config.get("candidateCount") or 1) > 1:
        raise Reject(400, "Multiple candidates is not enabled for this model.")
    thinking = config.get("thinkingConfig") or {}
    # proto3 JSON takes either spelling of a field name; google-genai sends include_thoughts.
    include = thinking.get("includeThoughts", thinking.get("include_thoughts"))
    raw_tools = body.get("tools")
    tools: list[Any] = raw_tools if isinstance(raw_tools, list) else []
    grounding = any(isinstance(tool, dict) and "googleSearch" in tool for tool in tools)
    options = image_config.get("imageOutputOptions") or {}
    output_mime = options.get("mimeType") if isinstance(options, dict) else None
    if output_mime is not None and output_mime not in ("image/png", "image/jpeg"):
        raise Reject(400, f"Unsupported image output MIME type {output_mime}; use image/png or image/jpeg.")
    return Settings(ratio=ratio, size=size or spec.default_size, modalities=modalities,
                    include_thoughts=bool(include), input_shape=input_shape(body["contents"]),
                    grounding=grounding, output_mime=output_mime)


def _modalities(values: Any) -> tuple[str, ...] | None:
    if values is None:
        return None
    normalized = []
    for index, value in enumerate(values if isinstance(values, list) else [values]):
        upper = value.upper() if isinstance(value, str) else None
        if upper not in MODALITIES:
            raise Reject(400, f"Invalid value at 'generation_config.response_modalities[{index}]' "
                              "(type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), "
                              f"\"{value}\"")
        normalized.append(upper)
    return tuple(normalized)


def _ratio(ratio: Any, spec: ModelSpec) -> str | None:
    if ratio is None:
        return None
    if ratio not in PROTO_RATIOS:
        listed = ", ".join(f"'{r}'" for r in PROTO_RATIOS[:-1])
        raise Reject(400, f"aspect_ratio must be one of {listed}, or '{PROTO_RATIOS[-1]}'.")
    if ratio not in spec.aspect_ratios:
        raise Reject(400, f"Aspect ratio {ratio} is not supported for this model.")
    return str(ratio)


def _size(size: Any, spec: ModelSpec) -> str | None:
    if size is None:
        return None
    if size not in SIZE_SPELLINGS:
        raise Reject(400, f"Invalid image size {size}. Supported values are: 1K, 2K, 4K, 512, 512P, 512PX.")
    chosen = SIZE_SPELLINGS[str(size)]
    if not spec.sizes:
        return None  # 2.5 Flash Image accepts any valid spelling and ignores it
    if chosen not in spec.sizes:
        raise Reject(400, f"Image size {chosen} is not supported for this model.")
    return chosen


def input_shape(contents: list[Any]) -> tuple[int, int] | None:
    """The size of the image an edit works on: the first image of the last user turn, else
    the last image anywhere in the conversation (a chat editing its previous answer)."""
    turns = [c for c in contents if isinstance(c, dict)]
    users = [c for c in turns if c.get("role", "user") == "user"]
    candidates = _images(users[-1]) if users else []
    if not candidates:
        every = [image for turn in turns for image in _images(turn)]
        candidates = every[-1:]
    for data in candidates:
        try:
            with Image.open(io.BytesIO(b64decode(data))) as image:
                return image.size
        except (UnidentifiedImageError, OSError, ValueError):
            continue  # not an image the model could read; its shape cannot count
    return None


def _images(turn: dict[str, Any]) -> list[str]:
    return [str(part["inlineData"].get("data", "")) for part in turn.get("parts") or []
            if isinstance(part, dict) and isinstance(part.get("inlineData"), dict)
            and str(part["inlineData"].get("mimeType", "image/")).startswith("image/")]


def nearest_ratio(shape: tuple[int, int], ratios: tuple[str, ...] | list[str]) -> str:
    """The aspect ratio among `ratios` closest to `shape`'s (compared on a log scale, so 2:1
    and 1:2 are equally far from 1:1)."""
    target = math.log(shape[0] / shape[1])

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(float(w) / float(h)) - target)

    return min(ratios, key=distance)
