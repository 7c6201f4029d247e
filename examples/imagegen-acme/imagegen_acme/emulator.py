"""A local emulator of the Acme Images API, on imagegen's emulator kit (``imagegen emulate acme``).

Jobs run on the emulator's clock (a ``FakeClock`` in fast tests); a prompt with ``[[fail]]``
makes its job fail. Faults, latency, call counts, file hosting and the error envelope for
unknown routes come from the kit.
"""

from __future__ import annotations

import itertools
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from imagegen.testing import Emulator, JobTimeline, Reject, read_bearer

__all__ = ["AcmeEmulator", "create_emulator"]

_SIDES = {"S": 64, "M": 128, "L": 256}


class AcmeEmulator(Emulator):
    name = "acme"

    def __init__(self, *, running_s: float = 0.05, **options: Any) -> None:
        super().__init__(**options)
        self.running_s = running_s
        self.jobs: dict[str, tuple[JobTimeline, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._refunded: set[str] = set()

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/images", self.create, methods=["POST"]),
                Route("/v1/images/{job_id}", self.get, methods=["GET"])]

    def _authenticate(self, request: Request) -> None:
        if not self.api_keys.verify(read_bearer(request)).ok:
            raise Reject(401, "invalid API key", code="invalid_api_key")

    async def create(self, request: Request) -> JSONResponse:
        self._authenticate(request)
        body = await request.json()
        if not isinstance(body, dict) or not str(body.get("prompt") or "").strip():
            raise Reject(400, "prompt is required", code="invalid_request")
        job_id = f"img_{next(self._ids)}"
        self.jobs[job_id] = (JobTimeline(self.clock, running_s=self.running_s), body)
        # Billed when accepted, as the job will run whether or not this answer reaches the
        # client; a job that fails is refunded (below).
        self.counters.charge(usd=0.02 * _count(body), ref=job_id)
        return JSONResponse({"id": job_id, "status": "queued"}, status_code=202)

    async def get(self, request: Request) -> JSONResponse:
        self._authenticate(request)
        job_id = request.path_params["job_id"]
        if job_id not in self.jobs:
            raise Reject(404, f"no image job {job_id}", code="not_found")
        timeline, body = self.jobs[job_id]
        phase = timeline.poll()
        if phase != "done":
            return JSONResponse({"id": job_id, "status": phase})
        if "[[fail]]" in str(body.get("prompt")):  # a prompt marker, for tests of failed jobs
            if job_id not in self._refunded:
                self._refunded.add(job_id)
                self.counters.charge(usd=-0.02 * _count(body), ref=job_id)
            return JSONResponse({"id": job_id, "status": "failed",
                                 "error": {"code": "refused", "message": "the prompt was refused"}})
        side = _SIDES.get(str(body.get("size")), 128)
        outputs = []
        for index in range(_count(body)):
            path = self.store_file(self.image(side, side, label=f"{job_id}-{index}"), "image/png")
            outputs.append({"url": self.file_url(request, path)})
        return JSONResponse({"id": job_id, "status": "succeeded", "outputs": outputs})


def _count(body: dict[str, Any]) -> int:
    return int(body.get("n") or 1)


def create_emulator(**options: Any) -> AcmeEmulator:
    """The Acme emulator; ``options`` are the kit's (``faults``, ``latency``, ``clock``,
    ``api_keys``, ``seed``) and ``running_s``."""
    return AcmeEmulator(**options)
