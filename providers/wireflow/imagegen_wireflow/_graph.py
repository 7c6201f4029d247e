"""Turning an imagegen request into a Wireflow graph (pure: no I/O).

The text prompt becomes an ``input:text`` node wired ``out-prompt -> in-prompt`` to the
model's generation node; each input image becomes an ``input:image`` node wired
``out-image -> in-image<N>``; aspect ratio, size and image count become the generation
node's params, under the names the node table gives. Node ids are fixed (``prompt``,
``image-1``..., ``generate``), so the graph's *shape* (node types, ids and edges, not
values) is stable across requests: one saved workflow serves every request of a shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from imagegen import ImageRequest, InvalidRequestError, ModelSpec

from ._catalog import NodeType, load_catalog

__all__ = ["GENERATE_NODE_ID", "Graph", "ParamLocation", "build_graph"]

GENERATE_NODE_ID = "generate"
PROMPT_NODE_ID = "prompt"
#: Where node values are written: ``config`` is what the client scripts and the editor use;
#: ``params`` is what the docs and blog posts show; ``data`` is the executions page's example
#: (docs/providers/wireflow.md).
ParamLocation = Literal["config", "params", "data"]


@dataclass(frozen=True)
class Graph:
    """A built graph plus what the lifecycle needs to know about it."""

    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    #: Hash of node ids, types and edges; equal shapes reuse one saved workflow.
    shape_key: str
    #: The shape plus the generation node's params: ``/run`` cannot change params, so in
    #: run mode each distinct set of params gets its own saved workflow.
    params_key: str
    node_type: str
    #: ``/run`` inputs (``{nodeId: value}``) and webhook trigger data for the same request.
    run_inputs: dict[str, Any]
    trigger_data: dict[str, Any]
    credits: float

    def workflow_body(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "description": "Created by imagegen for one graph shape; values are sent on each execute.",
            "tags": ["imagegen"],
            "isActive": True,
            "nodes": self.nodes,
            "edges": self.edges,
        }


def _node(node_id: str, kind: NodeType, values: dict[str, Any], where: ParamLocation,
          x: int, y: int) -> dict[str, Any]:
    data: dict[str, Any] = {"label": kind.label if kind.category != "input" else node_id,
                            "nodeType": kind.name, "category": kind.category, **kind.data_fields}
    values = {**kind.fixed_params, **values}
    if where == "data":
        data.update(values)
    else:
        data[where] = values
    return {"id": node_id, "type": "basedNode", "position": {"x": x, "y": y}, "data": data}


def _edge(source: str, source_port: str, target: str, target_port: str) -> dict[str, Any]:
    return {"id": f"e-{source}-{target}-{target_port}", "source": source, "target": target,
            "sourceHandle": f"out-{source_port}", "targetHandle": f"in-{target_port}"}


def _image_port(gen: NodeType, index: int) -> str:
    ports = gen.image_ports()
    prefix = gen.dynamic_prefix
    if prefix:
        return f"{prefix}{index}"
    if index <= len(ports):
        return ports[index - 1]
    raise InvalidRequestError(f"the Wireflow node {gen.name} takes at most {len(ports)} input image(s)")


def _gen_params(request: ImageRequest, spec: ModelSpec, gen: NodeType) -> dict[str, Any]:
    wanted = {
        "aspect_ratio": request.aspect_ratio or spec.default_aspect_ratio,
        "size": request.size or spec.default_size,
        "n": request.n,
    }
    params: dict[str, Any] = {}
    for field, value in wanted.items():
        name = gen.params.get(field)
        if name is not None and value is not None:
            params[name] = value
    return params


def build_graph(request: ImageRequest, spec: ModelSpec, image_urls: list[str], *,
                where: ParamLocation = "config") -> Graph:
    """The graph for ``request`` on ``spec``'s node; ``image_urls`` are the uploaded inputs."""
    catalog = load_catalog()
    gen = catalog.nodes[spec.extra["node_type"]]
    text = catalog.nodes["input:text"]
    image = catalog.nodes["input:image"]
    if request.n > 1 and "n" not in gen.params:
        raise InvalidRequestError(f"the Wireflow node {gen.name} makes one image per run; use n=1")
    nodes = [_node(PROMPT_NODE_ID, text, {text.value_param or "prompt": request.prompt}, where, 0, 0)]
    edges = [_edge(PROMPT_NODE_ID, "prompt", GENERATE_NODE_ID, "prompt")]
    run_inputs: dict[str, Any] = {PROMPT_NODE_ID: request.prompt}
    for index, url in enumerate(image_urls, start=1):
        node_id = f"image-{index}"
        values = {image.value_param or "imageUrl": url, **dict.fromkeys(image.value_aliases, url)}
        nodes.append(_node(node_id, image, values, where, 0, 200 * index))
        edges.append(_edge(node_id, "image", GENERATE_NODE_ID, _image_port(gen, index)))
        run_inputs[node_id] = url
    params = _gen_params(request, spec, gen)
    nodes.append(_node(GENERATE_NODE_ID, gen, params, where, 500, 0))
    shape = json.dumps({"nodes": [(n["id"], n["data"]["nodeType"]) for n in nodes], "edges": edges,
                        "where": where}, sort_keys=True)
    trigger = {"prompt": request.prompt, **params}
    if image_urls:
        trigger["images"] = list(image_urls)
    return Graph(
        nodes=nodes,
        edges=edges,
        shape_key=hashlib.sha256(shape.encode()).hexdigest()[:32],
        params_key=hashlib.sha256((shape + json.dumps(params, sort_keys=True)).encode()).hexdigest()[:32],
        node_type=gen.name,
        run_inputs=run_inputs,
        trigger_data=trigger,
        credits=gen.credits * request.n,
    )
