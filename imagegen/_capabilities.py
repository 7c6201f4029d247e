"""Model capabilities and price books, as data.

A provider ships its models in a data file (TOML or JSON) next to its code; a new
model is a data change. ``check_request`` validates a request against one model
before anything is sent, and every error names what the model does support.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import ConfigurationError, InvalidRequestError, UnsupportedFeatureError
from ._models import ImageRequest

__all__ = ["ModelSpec", "Price", "check_request", "load_models", "read_data_file"]


class Price(BaseModel):
    """What one model costs; every entry carries its source and as-of date."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    source: str
    as_of: date
    #: USD per output image, keyed by size ("1K", "2K"...) or "*" for any size.
    per_image_usd: dict[str, float] = Field(default_factory=dict)
    #: Provider credits per output image, keyed like ``per_image_usd``.
    credits_per_image: dict[str, float] = Field(default_factory=dict)
    usd_per_credit: float | None = None
    #: Token rates and other provider-specific figures (USD per million tokens, ...).
    rates: dict[str, float] = Field(default_factory=dict)
    batch_discount: float | None = None
    notes: str | None = None

    def for_size(self, table: dict[str, float], size: str | None) -> float | None:
        if size is not None and size in table:
            return table[size]
        return table.get("*")

    def image_usd(self, size: str | None) -> float | None:
        usd = self.for_size(self.per_image_usd, size)
        if usd is None and self.usd_per_credit is not None:
            credits = self.for_size(self.credits_per_image, size)
            usd = None if credits is None else credits * self.usd_per_credit
        return usd


class ModelSpec(BaseModel):
    """One model of one provider: what it accepts and what it costs."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    id: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    #: Allowed ``size`` values; empty means the model has one size and ``size`` is not accepted.
    sizes: list[str] = Field(default_factory=list)
    default_size: str | None = None
    aspect_ratios: list[str] = Field(default_factory=list)
    default_aspect_ratio: str | None = None
    output_formats: list[str] = Field(default_factory=list)
    max_images_per_call: int = 1
    max_reference_images: int = 0
    max_prompt_chars: int | None = None
    supports_edit: bool = False
    supports_mask: bool = False
    supports_seed: bool = False
    async_jobs: bool = False
    webhooks: bool = False
    #: Requests can be sent as one vendor batch (``Client.submit_batch``), at ``price.batch_discount``.
    vendor_batch: bool = False
    #: The model keeps a conversation (``Client.session`` sends earlier turns back); without it a
    #: session passes the previous output as a reference image.
    multi_turn: bool = False
    #: Options the provider understands in ``ImageRequest.options``.
    options: list[str] = Field(default_factory=list)
    deprecated: str | None = None
    price: Price | None = None
    #: Provider-specific data (pixel tables, tokens per image, node types, ...).
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [self.id, *self.aliases]

    def effective_size(self, request: ImageRequest) -> str | None:
        return request.size or self.default_size

    def rate(self, key: str) -> float:
        """A figure of the price book's ``rates`` (USD per million tokens, ...); 0 when it has none."""
        return float(self.price.rates.get(key, 0.0)) if self.price is not None else 0.0

    def capabilities(self) -> dict[str, Any]:
        """A JSON-able summary for tables and ``imagegen providers``."""
        return self.model_dump(exclude={"price", "extra", "description"})


def _choices(values: list[str]) -> str:
    return ", ".join(values) if values else "none"


def check_request(request: ImageRequest, spec: ModelSpec, *, provider: str) -> list[str]:
    """Raise if ``spec`` cannot serve ``request``; return warnings for what it will adapt."""
    where = f"{provider}/{spec.id}"
    warnings: list[str] = []
    if spec.max_prompt_chars is not None and len(request.prompt) > spec.max_prompt_chars:
        raise InvalidRequestError(
            f"the prompt has {len(request.prompt)} characters; {where} accepts at most {spec.max_prompt_chars}"
        )
    if request.size is not None and request.size not in spec.sizes:
        hint = "it has a single size: leave size unset" if not spec.sizes else f"use one of {_choices(spec.sizes)}"
        raise UnsupportedFeatureError(f"size {request.size!r} is not supported by {where}; {hint}")
    if request.aspect_ratio is not None and request.aspect_ratio not in spec.aspect_ratios:
        raise UnsupportedFeatureError(
            f"aspect ratio {request.aspect_ratio!r} is not supported by {where}; "
            f"use one of {_choices(spec.aspect_ratios)}"
        )
    if request.output_format is not None and request.output_format.lower() not in spec.output_formats:
        raise UnsupportedFeatureError(
            f"output format {request.output_format!r} is not supported by {where}; "
            f"use one of {_choices(spec.output_formats)}"
        )
    if request.operation == "edit" and not spec.supports_edit:
        raise UnsupportedFeatureError(f"{where} cannot edit images; pick a model that supports editing")
    if request.operation == "edit" and not request.images:
        raise InvalidRequestError("an edit needs at least one input image; pass images=[...]")
    if len(request.images) > spec.max_reference_images:
        raise UnsupportedFeatureError(
            f"{len(request.images)} input images given; {where} accepts at most {spec.max_reference_images}"
        )
    if request.mask is not None and not spec.supports_mask:
        raise UnsupportedFeatureError(
            f"{where} does not support masks; {mask_alternatives()}, or describe the region to change "
            "in the prompt instead"
        )
    if request.seed is not None and not spec.supports_seed:
        raise UnsupportedFeatureError(f"{where} does not accept a seed; leave seed unset")
    if request.webhook_url is not None and not spec.webhooks:
        raise UnsupportedFeatureError(f"{where} does not deliver webhooks; poll with status() instead")
    if request.conversation is not None and not spec.multi_turn:
        raise UnsupportedFeatureError(f"{where} keeps no conversation; a session sends it the previous image instead")
    if request.conversation is not None and request.cache:
        raise InvalidRequestError("a conversation turn depends on earlier turns the cache cannot see; set cache=False")
    unknown = sorted(set(request.options) - set(spec.options))
    if unknown:
        raise UnsupportedFeatureError(
            f"option(s) {', '.join(unknown)} not understood by {where}; it accepts: {_choices(spec.options)}"
        )
    if spec.deprecated:
        warnings.append(f"{where} is deprecated: {spec.deprecated}")
    return warnings


def mask_alternatives() -> str:
    """Which installed providers (and models) take a mask, for the error that refuses one."""
    from ._plugins import registry  # deferred: only an error message needs the plugins

    found: list[str] = []
    try:
        for name, cls in sorted(registry.providers().items()):
            models = [m.id for m in cls.models() if m.supports_mask and not m.extra.get("shutdown")]
            if models:
                found.append(f"{name} ({', '.join(models[:3])}{', ...' if len(models) > 3 else ''})")
    except Exception:  # a broken third-party plugin must not hide the real error
        return "no installed provider could be asked about masks"
    return f"masks are supported by {'; '.join(found)}" if found else "no installed provider supports masks"


def read_data_file(path: str | Path | Traversable) -> dict[str, Any]:
    """A provider's data file (TOML, or JSON by its ``.json`` suffix) as a dict."""
    where = path if isinstance(path, Traversable) else Path(path)
    try:
        raw = where.read_bytes()
        import tomllib  # a data file is read when its plugin loads, not with imagegen

        data = json.loads(raw) if where.name.endswith(".json") else tomllib.loads(raw.decode())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"data file {where} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"data file {where} holds {type(data).__name__}, not a table")
    return data


def load_models(path: str | Path | Traversable, *,
                prepare: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
                ) -> list[ModelSpec]:
    """Load a provider's models: ``[[models]]`` in TOML, or ``"models"`` in JSON.

    ``prepare(entry, document)`` returns each model entry as it should be validated, given
    the whole file (shared tables, node prices); it may raise KeyError, ValueError or
    TypeError for a broken file, which becomes a ConfigurationError naming the file.
    """
    data = read_data_file(path)
    try:
        entries = data["models"]
        return [ModelSpec.model_validate(prepare(dict(m), data) if prepare else m) for m in entries]
    except (KeyError, ValueError, TypeError, ValidationError) as exc:
        raise ConfigurationError(f"model data file {path} is unreadable: {type(exc).__name__}: {exc}") from exc
