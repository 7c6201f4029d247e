"""The OpenAI emulator's answers: images, usage, DALL-E url items, streams and billed drops."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from imagegen import ModelSpec
from imagegen.testing import ConnectionDropped

from ._catalog import load_catalog, output_tokens
from ._emulator_shapes import Reject
from ._pricing import PARTIAL_IMAGE_TOKENS, PROMPT_OVERHEAD_TOKENS, flat_cost

__all__ = ["AnswerParts"]


class AnswerParts:
    """Mixed into ``OpenAIEmulator``: the pieces of a successful answer."""

    # Provided by the Emulator base class, which comes after this mixin: image(), store_file(),
    # file_url() and counters.
    counters: Any
    today: dt.date | None
    _authenticate: Any
    _model: Any
    image: Any
    store_file: Any
    file_url: Any

    async def _list_models(self, request: Request) -> Response:
        """``GET /v1/models``: the image models with ``shutdown_date`` (removed ones not listed)."""
        try:
            self._authenticate(request)
        except Reject as reject:
            return reject.response
        return JSONResponse({"object": "list", "data": [self._model_object(spec) for spec in load_catalog()
                                                        if not self._is_shut_down(spec)]})

    async def _get_model(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            spec = self._model(request.path_params["model"])
        except Reject as reject:
            return reject.response
        return JSONResponse(self._model_object(spec))

    def _is_shut_down(self, spec: ModelSpec) -> bool:
        shutdown = spec.extra.get("shutdown")
        return shutdown is not None and shutdown <= (self.today or dt.datetime.now(dt.UTC).date())

    @staticmethod
    def _model_object(spec: ModelSpec) -> dict[str, Any]:
        released = spec.extra.get("released")
        created = int(dt.datetime.combine(released, dt.time(), dt.UTC).timestamp()) if released else 0
        shutdown = spec.extra.get("shutdown")
        return {"id": spec.id, "object": "model", "created": created, "owned_by": "system",
                "shutdown_date": shutdown.isoformat() if shutdown else None}

    def _render(self, width: int, height: int, fmt: str, *, transparent: bool, label: str | None = None) -> bytes:
        if fmt == "gif":
            from PIL import Image

            frames = [Image.open(io.BytesIO(self.image(width, height, "png"))).convert("P") for _ in range(2)]
            buffer = io.BytesIO()
            frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
            return buffer.getvalue()
        data: bytes = self.image(width, height, fmt, label=label)
        if not transparent:
            return data
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            rgba = img.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        buffer = io.BytesIO()
        rgba.save(buffer, "PNG" if fmt == "png" else "WEBP")
        return buffer.getvalue()

    def _usage(self, spec: ModelSpec, settings: dict[str, Any], inputs: int, quality: str, wire: str) -> dict[str, Any]:
        text_in = math.ceil(len(settings["prompt"]) / 4) + PROMPT_OVERHEAD_TOKENS
        image_in = inputs * int(spec.extra.get("input_tokens_per_image", 0))
        image_out = output_tokens(spec, quality, wire) * settings["n"] + PARTIAL_IMAGE_TOKENS * settings["partials"]
        text_out = int(spec.extra.get("text_output_tokens", 0))
        return {"input_tokens": text_in + image_in,
                "input_tokens_details": {"image_tokens": image_in, "text_tokens": text_in},
                "output_tokens": image_out + text_out,
                "output_tokens_details": {"image_tokens": image_out, "text_tokens": text_out},
                "total_tokens": text_in + image_in + image_out + text_out}

    def _dalle_body(self, request: Request, spec: ModelSpec, settings: dict[str, Any], params: dict[str, Any],
                    images: list[bytes], quality: str) -> tuple[dict[str, Any], float]:
        as_url = params.get("response_format", "url") != "b64_json"
        items = []
        for data in images:
            item = ({"url": self.file_url(request, self.store_file(data, "image/png"))} if as_url
                    else {"b64_json": base64.b64encode(data).decode()})
            if spec.id == "dall-e-3":
                item = {"revised_prompt": f"A detailed rendering of: {settings['prompt'][:300]}", **item}
            items.append(item)
        usd = flat_cost(spec, quality, settings["size"], len(images)).usd or 0.0
        return {"created": int(time.time()), "data": items}, usd

    def _dropped(self, body: dict[str, Any], usd: float, request_id: str) -> Response:
        text = json.dumps(body).encode()

        async def cut() -> AsyncIterator[bytes]:
            self.counters.charge(usd=usd, ref=request_id)
            yield text[: len(text) // 3]
            raise ConnectionDropped("connection dropped after billing ([[DROP_AFTER_BILLING]])")

        return StreamingResponse(cut(), media_type="application/json", headers={"content-length": str(len(text))})

    async def _events(self, body: dict[str, Any], usd: float, request_id: str, event: str,
                      settings: dict[str, Any], width: int, height: int) -> AsyncIterator[bytes]:
        echo = {"background": settings["background"], "output_format": settings["output_format"],
                "quality": settings["quality"], "size": settings["size"]}
        if settings.get("stream_fault") != "error":
            # Billed as the 200 goes out: a stream cut after it (STREAM_CUT, or a drop fault
            # mid-stream) was paid for. An in-band error event is the vendor failing the call.
            self.counters.charge(usd=usd, ref=request_id)
        for index in range(settings["partials"]):
            preview = self._render(width, height, settings["output_format"], transparent=False,
                                   label=f"partial {index}")
            yield _sse(f"{event}.partial_image", {"type": f"{event}.partial_image", "created_at": body["created"],
                                                   "b64_json": base64.b64encode(preview).decode(),
                                                   "partial_image_index": index, **echo})
            await anyio.lowlevel.checkpoint()
        if settings.get("stream_fault") == "error":  # the shape of a mid-stream error event is UNKNOWN
            yield _sse("error", {"type": "error", "error": {"type": "server_error", "code": None, "param": None,
                                                            "message": "The server had an error while streaming."}})
            return
        if settings.get("stream_fault") == "cut":
            return  # the stream ends before its completed event, as a cut connection would
        final = {k: body[k] for k in ("background", "output_format", "quality", "size")}
        for item in body["data"]:
            yield _sse(f"{event}.completed", {"type": f"{event}.completed", "created_at": body["created"],
                                               "b64_json": item["b64_json"], **final, "usage": body["usage"]})


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()




