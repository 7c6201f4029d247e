"""A tiny example emulator, written the way provider emulators use the kit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from imagegen.testing import Emulator, JobTimeline, Reject, read_bearer


class EchoEmulator(Emulator):
    """``POST /generate`` waits on its latency model, bills 1 credit, stores a PNG;
    ``GET /stream`` sends three events; ``/jobs`` runs jobs on the clock, behind a key."""

    name = "echo"

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.jobs: dict[str, JobTimeline] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/generate", self.generate, methods=["POST"]),
            Route(
                "/v1beta/models/{model}:generateContent", self.generate_content, methods=["POST"]
            ),
            Route("/stream", self.stream, methods=["GET"]),
            Route("/jobs", self.submit, methods=["POST"]),
            Route("/jobs/{job_id}", self.status, methods=["GET"]),
        ]

    async def generate(self, request: Request) -> Response:
        body = await request.json()
        width, height = body.get("width", 64), body.get("height", 48)
        if width > 4096:
            raise Reject(400, "width is at most 4096", code="too_wide", limit=4096)
        await self.simulate_latency(width * height / 1_000_000)
        self.counters.charge(credits=1, ref=body.get("ref"))
        self.counters.incr("images")
        path = self.store_file(self.image(width, height, label=body.get("label")), "image/png")
        return JSONResponse({"url": self.file_url(request, path), "width": width, "height": height})

    async def generate_content(self, request: Request) -> Response:
        self.counters.charge(usd=0.04, ref=request.path_params["model"])
        return JSONResponse({"model": request.path_params["model"]})

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"data: {number}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def submit(self, request: Request) -> Response:
        self._key(request)
        job_id = f"job-{len(self.jobs) + 1}"
        self.jobs[job_id] = JobTimeline(self.clock, queued_s=1.0, running_s=10.0)
        return JSONResponse({"id": job_id}, status_code=202)

    async def status(self, request: Request) -> Response:
        self._key(request)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            raise Reject(404, "no such job")
        phase = job.poll()
        return JSONResponse({"status": phase, "progress": job.progress(), "elapsed_s": job.elapsed_s()})

    def _key(self, request: Request) -> str:
        credential = self.api_keys.verify(read_bearer(request))
        if not credential.ok:
            raise Reject(401, f"API key {credential.problem}")
        assert credential.key is not None
        return credential.key
