"""Wireflow's node catalogue, read from ``models.toml`` (which also holds the models).

The provider builds graphs from the node table, the emulator validates and bills graphs
with the same table, and each model's price is derived from its generation node's credits
(``model_entry``, the provider's ``prepare_model``), so the numbers live in one place.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from imagegen import ConfigurationError, Price
from imagegen.provider import read_data_file

__all__ = ["NodeType", "load_catalog", "model_entry", "node_type"]

DATA_FILE = Path(__file__).with_name("models.toml")


@dataclass(frozen=True)
class NodeType:
    """One Wireflow ``nodeType``: ports, params fed from the request, and credits per run."""

    name: str
    category: str
    label: str
    inputs: dict[str, str]
    outputs: dict[str, str]
    #: request field ("aspect_ratio", "size", "n") -> node param name
    params: dict[str, str]
    credits: float
    credits_source: str
    credits_as_of: date
    #: input nodes: the param that holds the node's value (``prompt``, ``imageUrl``)
    value_param: str | None = None
    value_aliases: tuple[str, ...] = ()
    fixed_params: dict[str, Any] = field(default_factory=dict)
    data_fields: dict[str, Any] = field(default_factory=dict)
    dynamic_prefix: str | None = None
    dynamic_type: str | None = None
    emulator_format: str = "png"

    def input_port(self, port: str) -> str | None:
        """The type of input ``port``, counting dynamic ports such as ``image7``."""
        if port in self.inputs:
            return self.inputs[port]
        prefix = self.dynamic_prefix
        if prefix and port.startswith(prefix) and port[len(prefix):].isdigit() and int(port[len(prefix):]) >= 1:
            return self.dynamic_type
        return None

    def image_ports(self) -> list[str]:
        return [port for port, kind in self.inputs.items() if kind == "IMAGE"]

    @property
    def billable(self) -> bool:
        return self.credits > 0


@dataclass(frozen=True)
class Catalog:
    nodes: dict[str, NodeType]
    usd_per_credit: float


def _node(name: str, raw: dict[str, Any]) -> NodeType:
    dynamic = raw.get("dynamic_inputs") or {}
    return NodeType(
        name=name,
        category=raw.get("category", name.partition(":")[0]),
        label=raw.get("label", name),
        inputs=dict(raw.get("inputs", {})),
        outputs=dict(raw.get("outputs", {})),
        params=dict(raw.get("params", {})),
        credits=float(raw["credits"]),
        credits_source=raw["credits_source"],
        credits_as_of=raw["credits_as_of"],
        value_param=raw.get("value_param"),
        value_aliases=tuple(raw.get("value_aliases", ())),
        fixed_params=dict(raw.get("fixed_params", {})),
        data_fields=dict(raw.get("data_fields", {})),
        dynamic_prefix=dynamic.get("prefix"),
        dynamic_type=dynamic.get("type"),
        emulator_format=raw.get("emulator_format", "png"),
    )


def model_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``[[models]]`` entry with its price and ``extra.node_type`` derived from its ``node``."""
    catalog = load_catalog()
    entry = dict(entry)
    node = catalog.nodes[entry.pop("node")]
    price = Price(
        source=node.credits_source,
        as_of=node.credits_as_of,
        credits_per_image={"*": node.credits},
        usd_per_credit=catalog.usd_per_credit,
        notes=f"{node.credits:g} credits per image for the {node.name} node; text and image inputs are free",
    )
    return {**entry, "price": price, "extra": {"node_type": node.name, **entry.pop("extra", {})}}


@functools.lru_cache(maxsize=4)
def load_catalog(path: Path = DATA_FILE) -> Catalog:
    """Read and check the node table once per process."""
    data = read_data_file(path)
    try:
        usd_per_credit = float(data["usd_per_credit"])
        nodes = {name: _node(name, raw) for name, raw in data["nodes"].items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(f"wireflow data file {path} is unreadable: {type(exc).__name__}: {exc}") from exc
    return Catalog(nodes=nodes, usd_per_credit=usd_per_credit)


def node_type(name: str) -> NodeType | None:
    return load_catalog().nodes.get(name)
