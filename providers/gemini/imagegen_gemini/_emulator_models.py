"""``GET /{version}/models`` and ``GET /{version}/models/{model}``: the ``Model`` resources of the
image models the emulator serves (``ModelService.ListModels`` / ``GetModel``); and
``POST /{version}/models/{model}:countTokens`` (text at about four characters a token, each
inline image at the model's input tokens per image, as ``generateContent`` bills them).

Each id the emulator answers to is listed once (GA and ``-preview`` ids side by side, as the real
list has them). Token limits are the documented ones where the spec gives them (3 Pro Image:
65,536 in / 32,768 out; 3.1 Flash Lite Image: 65,536 / 4,096); for the others the 3 Pro figures
stand in. Paging follows the API: ``pageSize`` (default 50, at most 1000) and an opaque
``pageToken``/``nextPageToken``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from imagegen import ModelSpec
from imagegen.testing import Reject

from ._emulator_answer import count_tokens

if TYPE_CHECKING:
    from .emulator import GeminiEmulator

__all__ = ["count_tokens_endpoint", "get_model", "list_models", "model_resource"]

_LIMITS = {"gemini-3.1-flash-lite-image": (65_536, 4_096)}
_DEFAULT_LIMITS = (65_536, 32_768)
_METHODS = ["generateContent", "streamGenerateContent", "countTokens", "batchGenerateContent"]


def model_resource(name: str, spec: ModelSpec) -> dict[str, Any]:
    """The ``Model`` resource for id `name` (one of `spec`'s names)."""
    inputs, outputs = _LIMITS.get(spec.id, _DEFAULT_LIMITS)
    display = spec.description.split(":")[0].strip() if spec.description else name
    return {
        "name": f"models/{name}", "baseModelId": name, "version": "001",
        "displayName": display + (" (preview)" if name.endswith("-preview") else ""),
        "description": spec.description, "inputTokenLimit": inputs, "outputTokenLimit": outputs,
        "supportedGenerationMethods": _METHODS,
        "temperature": 1.0, "maxTemperature": 2.0, "topP": 0.95, "topK": 64,
        "thinking": bool(spec.extra.get("emulator", {}).get("thoughts_tokens")),
    }


async def list_models(emu: GeminiEmulator, request: Request) -> Response:
    emu.authenticate(request, "gemini")
    try:
        size = int(request.query_params.get("pageSize") or 50)
        start = int(base64.urlsafe_b64decode(request.query_params.get("pageToken") or "MA==") or b"0")
    except ValueError:
        raise Reject(400, "Invalid page token or page size.") from None
    size = max(1, min(size, 1000))
    names = sorted(emu.models)
    page = names[start:start + size]
    body: dict[str, Any] = {"models": [model_resource(name, emu.models[name]) for name in page]}
    if start + size < len(names):
        body["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
    return JSONResponse(body, media_type="application/json; charset=UTF-8")


async def get_model(emu: GeminiEmulator, request: Request) -> Response:
    emu.authenticate(request, "gemini")
    name = request.path_params["model"].removeprefix("models/")
    spec = emu.models.get(name)
    if spec is None:
        raise Reject(404, f"models/{name} is not found for API version {request.path_params['version']}, or is "
                          "not supported for getModel. Call ModelService.ListModels to see the list of available "
                          "models and their supported methods.")
    return JSONResponse(model_resource(name, spec), media_type="application/json; charset=UTF-8")


async def count_tokens_endpoint(emu: GeminiEmulator, request: Request) -> Response:
    emu.authenticate(request, "gemini")
    spec = emu.model_for(request)
    body = await emu.read_body(request)
    inner = body.get("generateContentRequest")
    if not (inner.get("contents") if isinstance(inner, dict) else body.get("contents")):
        raise Reject(400, "* CountTokensRequest.contents: contents is not specified\n")
    return JSONResponse(count_tokens(body, spec), media_type="application/json; charset=UTF-8")
