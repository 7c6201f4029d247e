"""``SynchronousProvider``: a provider whose vendor answers in the call and keeps no jobs.

Gemini's ``generateContent`` and OpenAI's Images API have no job queue: one call makes the
image. Such a provider writes ``call`` and inherits the job side: ``generate``/``edit`` report
the finished job through ``on_submit`` (the core records it, and its charge, before returning),
``submit`` runs the call now and returns the job already succeeded, and ``status`` says the job
is known only to the job store that recorded it.
"""

from __future__ import annotations

import time

from ._capabilities import ModelSpec
from ._errors import JobNotFoundError
from ._models import ImageRequest, ImageResult, Job
from ._provider import OnSubmit, Provider

__all__ = ["SynchronousProvider"]


class SynchronousProvider(Provider):
    """Base class of providers whose vendor answers in the call: subclasses implement ``call``."""

    async def call(self, request: ImageRequest, spec: ModelSpec, *, deadline: float) -> ImageResult:
        """Make the image(s) with one call to the vendor, by ``deadline`` (a ``time.monotonic()`` value)."""
        raise NotImplementedError

    def request_timeout(self, request: ImageRequest, spec: ModelSpec) -> float:
        """Seconds one call may take when the caller set no deadline: the configured timeout, else the class's."""
        return self.settings.timeout or self.default_timeout

    async def generate(self, request: ImageRequest, spec: ModelSpec, *, deadline: float,
                       on_submit: OnSubmit | None = None) -> ImageResult:
        result = await self.call(request, spec, deadline=deadline)
        if on_submit is not None:
            on_submit(self.finished_job(result, spec))
        return result

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        """The call runs now; the job comes back finished."""
        deadline = time.monotonic() + (request.timeout or self.request_timeout(request, spec))
        return self.finished_job(await self.call(request, spec, deadline=deadline), spec)

    async def status(self, native_id: str) -> Job:
        raise JobNotFoundError(
            f"{self.instance_name} answers synchronously and keeps no jobs: job "
            f"{self.job_id(native_id)!r} is known only to the job store that recorded "
            "it, and it is not there; check jobs.backend / jobs.path in the config")

    def finished_job(self, result: ImageResult, spec: ModelSpec) -> Job:
        """The succeeded job ``result`` stands for (its native id is the one in ``result.job_id``)."""
        return self.job((result.job_id or "").partition(":")[2], "succeeded", result=result, model=spec.id)
