"""A tiny example emulator, written the way provider emulators use the kit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen.testing import Emulator


class EchoEmulator(Emulator):
    """``POST /generate`` waits on its latency model, bills 1 credit, stores a PNG."""

    name = "echo"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/generate", self.generate, methods=["POST"]),
            Route(
                "/v1beta/models/{model}:generateContent", self.generate_content, methods=["POST"]
            ),
        ]

    async def generate(self, request: Request) -> Response:
        body = await request.json()
        width, height = body.get("width", 64), body.get("height", 48)
        await self.latency.sleep(width * height / 1_000_000)
        self.counters.charge(credits=1, ref=body.get("ref"))
        self.counters.incr("images")
        path = self.store_file(self.image(width, height, label=body.get("label")), "image/png")
        return JSONResponse({"url": self.file_url(request, path), "width": width, "height": height})

    async def generate_content(self, request: Request) -> Response:
        self.counters.charge(usd=0.04, ref=request.path_params["model"])
        return JSONResponse({"model": request.path_params["model"]})
