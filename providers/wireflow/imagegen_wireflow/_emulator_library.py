"""Wireflow emulator routes around the graphs: catalogues, media, previews, the download proxy,
and AI-generated workflows. The client scripts (G1-G3, G10, G13) are their only source, so both
dialects answer in the scripts' shapes; where those are UNKNOWN the choice is said here.

- ``GET /nodes``: the node catalogue from ``models.toml``, ports with ``isPort: true`` and the
  sidebar settings with ``isPort: false`` (G3 ``nodes``).
- ``GET /blocks`` (``?use=``, ``?renderable=1``, ``?id=``): a small fixed block library; the real
  one's contents are not published.
- ``GET /remotion/templates`` and ``/{id}``: two templates in G1's shape.
- ``POST /media/upload``: a multipart ``file``, or ``{"url"}`` fetched (see `fetch_media`) and
  re-hosted (G2, G3), answered ``{"data": {"url"}}`` with the emulator's own URL.
- ``GET /media``: the caller's uploads, ``{"data": [{url, mediaId, mimeType, size, createdAt}]}``
  (shape UNKNOWN; chosen).
- ``POST /render/remotion/preview``: three sampled still frames (20/55/85 % of the duration) as
  real PNGs, with ``diagnostics`` (G2); no validation beyond "has scenes".
- ``POST /workflows/generate/stream``: Server-Sent Events, progress then ``{done: true,
  workflow: {...}}`` (G1); the workflow is a text input wired to Nano Banana 2 (and image inputs
  for ``images``), saved for the caller.
- ``GET /api/download?url=`` (outside ``/api/v1``, no key): the bytes behind a URL. The
  emulator's own file URLs are served directly on any host; other URLs are fetched only from
  the hosts the published client routes through the proxy, else 403.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from imagegen.testing import Reject

from ._catalog import load_catalog
from ._emulator_render import envelope
from ._emulator_state import Account, Workflow

if TYPE_CHECKING:
    from .emulator import WireflowEmulator

__all__ = ["blocks", "download", "fetch_media", "generate_stream", "hosted", "list_media", "nodes", "preview",
           "template", "templates", "upload", "usage"]

MAX_MEDIA_BYTES = 25 * 1024 * 1024
#: Hosts the published client sends through the download proxy (G3 ``download``).
PROXIED_HOSTS = ("cdn.wireflow.ai", "cdn.atomu.ai", "fal.media", "replicate.delivery", "storage.googleapis.com",
                 "oaidalleapiprodscus.blob.core.windows.net")
_BLOCKS: list[dict[str, Any]] = [
    {"blockId": "endcard-logo", "displayName": "End card with logo", "tags": ["endcard", "outro", "brand"],
     "description": "Logo and call to action over a blurred last frame.", "renderable": True,
     "props": {"type": "object", "properties": {"headline": {"type": "string", "default": "Try it today"},
                                                "logo": {"type": "string", "format": "uri"}}},
     "ports": [{"id": "logo", "type": "IMAGE"}]},
    {"blockId": "captions-karaoke", "displayName": "Karaoke captions", "tags": ["captions", "subtitles"],
     "description": "Word-by-word captions from word timestamps.", "renderable": True,
     "props": {"type": "object", "properties": {"words": {"type": "array"}}},
     "ports": [{"id": "captions", "type": "TEXT"}]},
    {"blockId": "intro-kinetic", "displayName": "Kinetic title intro", "tags": ["intro", "title"],
     "description": "Animated title card.", "renderable": False,
     "props": {"type": "object", "properties": {"title": {"type": "string"}}}, "ports": []},
]
_TEMPLATES: list[dict[str, Any]] = [
    {"id": "hook-reel", "label": "Hook reel", "description": "Hook image, avatar video and a caption.",
     "category": "social", "compositionId": "HookReel", "fps": 30, "width": 1080, "height": 1920,
     "durationInFrames": 450, "defaultProps": {"text": "Wait for it"},
     "inputMappings": [{"propPath": "hookImage", "portId": "hookImage", "portLabel": "Hook image",
                        "portType": "IMAGE", "required": True},
                       {"propPath": "text", "portId": "text", "portLabel": "Caption", "portType": "TEXT",
                        "required": False}]},
    {"id": "product-slideshow", "label": "Product slideshow", "description": "Three stills with a title.",
     "category": "ecommerce", "compositionId": "Slideshow", "fps": 30, "width": 1080, "height": 1080,
     "durationInFrames": 300, "defaultProps": {"title": "New in"},
     "inputMappings": [{"propPath": f"images[{i}]", "portId": f"image{i + 1}", "portLabel": f"Image {i + 1}",
                        "portType": "IMAGE", "required": i == 0} for i in range(3)]},
]


def _base(request: Request) -> str:
    """The site root as the client sees it."""
    return str(request.base_url).rstrip("/")


async def nodes(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    catalogue = []
    for name, kind in sorted(load_catalog().nodes.items()):
        ports = [{"id": port, "label": port.replace("_", " ").title(), "type": kind_type, "isPort": True,
                  "required": port == "prompt"} for port, kind_type in kind.inputs.items()]
        settings = [{"id": param, "label": param.replace("_", " ").title(), "type": "TEXT", "isPort": False,
                     "required": False} for param in kind.params.values()]
        outputs = [{"id": port, "label": port.title(), "type": t} for port, t in kind.outputs.items()]
        catalogue.append({"nodeType": name, "label": kind.label, "category": kind.category,
                          "inputs": ports + settings, "credits": kind.credits, "outputs": outputs,
                          "expandedImageInputs": kind.image_ports(), "dynamicPorts": kind.dynamic_prefix is not None})
    return JSONResponse({"nodes": catalogue})


async def blocks(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    query = request.query_params
    found = [dict(block, previewUrl=None) for block in _BLOCKS]  # no preview videos offline
    if query.get("id"):
        found = [b for b in found if b["blockId"] == query["id"]]
    if query.get("use"):
        use = query["use"].lower()
        found = [b for b in found if use in b["tags"] or use in b["displayName"].lower()]
    if query.get("renderable") in ("1", "true"):
        found = [b for b in found if b["renderable"]]
    return JSONResponse({"blocks": found})


async def templates(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    return JSONResponse({"data": _TEMPLATES})


async def template(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    found = next((t for t in _TEMPLATES if t["id"] == request.path_params["tid"]), None)
    if found is None:
        raise Reject(404, "Template not found", code="not_found")
    return JSONResponse({"data": found})


async def list_media(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    return JSONResponse({"data": list(reversed(emu.media.get(account.user, [])))})


async def preview(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Reject(400, "Invalid JSON body", code="invalid_json") from None
    graph = body.get("sceneGraph", body) if isinstance(body, dict) else None
    scenes = graph.get("scenes") if isinstance(graph, dict) else None
    if not isinstance(graph, dict) or not isinstance(scenes, list) or not scenes:
        raise Reject(400, "Expected a sceneGraph with scenes", code="invalid_scene_graph")
    fps, width, height = (int(graph.get(k) or d) for k, d in (("fps", 30), ("width", 1080), ("height", 1920)))
    frames_total = sum(int((s or {}).get("durationInFrames") or fps * 3) for s in scenes if isinstance(s, dict))
    frames = []
    for share in (0.2, 0.55, 0.85):
        frame = int(frames_total * share)
        path = emu.store_file(emu.image(max(8, width // 10), max(8, height // 10), "png"), "image/png")
        frames.append({"frame": frame, "timeSeconds": round(frame / fps, 3), "url": _base(request) + path})
    emu.counters.incr("previews")
    return JSONResponse({"frames": frames, "issues": [], "warnings": [], "durationFrames": frames_total,
                         "durationSeconds": round(frames_total / fps, 3), "sceneCount": len(scenes),
                         "diagnostics": {"version": 1, "counts": {"error": 0, "warning": 0, "info": 0},
                                         "diagnostics": []}})


async def generate_stream(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Reject(400, "Invalid JSON body", code="invalid_json") from None
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, str) or not prompt.strip():
        raise Reject(400, "Missing required field: prompt", code="missing_fields")
    images = [url for url in body.get("images") or [] if isinstance(url, str)]
    workflow = _generated_workflow(emu, account, prompt, images)

    async def events() -> AsyncIterator[bytes]:
        for step in ("Reading your prompt", "Choosing nodes", "Wiring the graph"):
            yield _event({"type": "progress", "message": step})
        summary = {"id": workflow.id, "name": workflow.name, "nodes": workflow.nodes, "edges": workflow.edges}
        yield _event({"done": True, "workflow": summary})

    return StreamingResponse(events(), media_type="text/event-stream")


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _generated_workflow(emu: WireflowEmulator, account: Account, prompt: str, images: list[str]) -> Workflow:
    nodes: list[dict[str, Any]] = [
        {"id": "prompt-1", "type": "basedNode", "position": {"x": 0, "y": 0},
         "data": {"label": "Prompt", "nodeType": "input:text", "category": "input", "config": {"prompt": prompt}}},
        {"id": "generate-1", "type": "basedNode", "position": {"x": 500, "y": 0},
         "data": {"label": "Nano Banana 2", "nodeType": "generate:nano_banana_2", "category": "generate",
                  "config": {"num_images": 1, "aspect_ratio": "1:1"}}}]
    edges = [{"id": "edge-1", "source": "prompt-1", "target": "generate-1", "sourceHandle": "out-prompt",
              "targetHandle": "in-prompt"}]
    for index, url in enumerate(images[:1]):  # the generator has one static image port (G2)
        nodes.append({"id": f"image-{index + 1}", "type": "basedNode", "position": {"x": 0, "y": 300},
                      "data": {"label": "Reference", "nodeType": "input:image", "category": "input",
                               "inputType": "image", "config": {"imageUrl": url, "mediaType": "IMAGE"}}})
        edges.append({"id": f"edge-image-{index + 1}", "source": f"image-{index + 1}", "target": "generate-1",
                      "sourceHandle": "out-image", "targetHandle": "in-image1"})
    workflow = Workflow(id=emu.new_id("cm"), owner=account.key, name=f"Generated: {prompt[:40]}", nodes=nodes,
                        edges=edges, created_at=emu.now_iso())
    workflow.updated_at = workflow.created_at
    emu.workflows[workflow.id] = workflow
    emu.counters.incr("workflows_created")
    return workflow


async def download(emu: WireflowEmulator, request: Request) -> Response:
    """``GET /api/download?url=``: no key; the bytes, or a JSON error."""
    url = request.query_params.get("url", "")
    host = urllib.parse.urlsplit(url).hostname or ""
    if emu.stored_file(url) is None and host not in PROXIED_HOSTS:
        raise Reject(403, f"Host not allowed: {host or url!r}", code="host_not_allowed")
    data, mime = await fetch_media(emu, url, status=502)
    emu.counters.incr("proxied_downloads")
    return Response(data, media_type=mime, headers={"X-Request-Id": emu.new_id("req_")})


async def fetch_media(emu: WireflowEmulator, url: str, *, status: int) -> tuple[bytes, str]:
    """The bytes and MIME type behind `url`: the emulator's own files directly, anything else
    over HTTP (at most 25 MB); a failure is a `Reject` with `status`."""
    stored = emu.stored_file(url)
    if stored is not None:
        return stored
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Reject(400, f"Not an http(s) URL: {url!r}", code="invalid_url")
    try:
        async with httpx.AsyncClient(timeout=10, follow_redirects=True) as http:
            response = await http.get(url)
    except (httpx.HTTPError, OSError) as exc:
        raise Reject(status, f"Could not fetch {url}: {type(exc).__name__}", code="fetch_failed") from None
    if response.status_code != 200 or len(response.content) > MAX_MEDIA_BYTES:
        raise Reject(status, f"Could not fetch {url}: HTTP {response.status_code}", code="fetch_failed")
    return response.content, response.headers.get("content-type", "application/octet-stream").split(";")[0]


async def upload(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """A multipart ``file``, or ``{"url"}`` fetched and re-hosted (G2, G3): the hosted URL."""
    assert account is not None
    raw = await request.body()
    if len(raw) > MAX_MEDIA_BYTES:
        raise Reject(413, "File too large (25 MB max)", code="payload_too_large")
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        try:
            url = json.loads(raw or b"{}").get("url")
        except (ValueError, AttributeError):
            url = None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise Reject(400, "Expected {\"url\": \"https://...\"} or a multipart file", code="missing_fields")
        data, mime = await fetch_media(emu, url, status=400)
        return hosted(emu, request, account, data, mime, source=url)
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
    for part in message.iter_parts() if message.is_multipart() else []:
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            return hosted(emu, request, account, data, part.get_content_type(), source=part.get_filename())
    raise Reject(400, "Expected a multipart field named file", code="missing_fields")


def hosted(emu: WireflowEmulator, request: Request, account: Account, data: bytes, mime: str,
           source: str | None) -> Response:
    """Keep `data` as the caller's upload and answer its URL (``{"data": {"url"}}``)."""
    if len(data) > MAX_MEDIA_BYTES:
        raise Reject(413, "File too large (25 MB max)", code="payload_too_large")
    url = emu.file_url(request, emu.store_file(data, mime))
    emu.counters.incr("uploads")
    emu.media.setdefault(account.user, []).append({
        "url": url, "mediaId": url.rsplit("/", 1)[-1], "mimeType": mime, "size": len(data),
        "source": source, "createdAt": emu.now_iso()})
    return JSONResponse({"data": {"url": url}})


async def usage(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    """``GET /developer/usage``: shape UNKNOWN; the balance and the plan."""
    assert account is not None
    return JSONResponse(envelope(emu.options, {"credits": account.credits, "availableCredits": account.credits,
                                               "plan": account.plan}))
