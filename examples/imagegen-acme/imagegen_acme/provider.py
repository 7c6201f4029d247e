"""The Acme Images API as an imagegen provider.

``POST /v1/images`` starts a job (``{"id", "status"}``); ``GET /v1/images/{id}`` reports it,
with ``outputs[].url`` once it ``succeeded``. Errors are ``{"error": {"code", "message"}}``,
which the kit reads as it is. Everything else (sending, authentication, redirects, error
statuses, retries, rate limits, polling, the checks on downloaded outputs) comes from the kit
and the core: this module only builds requests and reads answers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from imagegen import ImageRequest, ImageResult, Job, JobStatus, ModelSpec
from imagegen.provider import HTTPProvider, PollSchedule, Schedule

__all__ = ["AcmeProvider"]

_STATUS: dict[str, JobStatus] = {"queued": "queued", "running": "running", "succeeded": "succeeded",
                                 "failed": "failed", "cancelled": "cancelled"}


class AcmeProvider(HTTPProvider):
    """Acme Images: text to image, asynchronous jobs, output URLs."""

    name: ClassVar[str] = "acme"
    display_name: ClassVar[str] = "Acme Images"
    api_key_env: ClassVar[tuple[str, ...]] = ("ACME_API_KEY",)
    default_base_url: ClassVar[str] = "https://api.acme.example"
    models_file: ClassVar[str | None] = "models.toml"
    poll_schedule: Schedule = PollSchedule(initial=0.5, factor=1.5, cap=5.0)
    emulator: ClassVar[str | None] = "imagegen_acme.emulator:create_emulator"

    async def submit(self, request: ImageRequest, spec: ModelSpec) -> Job:
        body = {"model": spec.id, "prompt": request.prompt, "n": request.n,
                "size": request.size or spec.default_size,
                "aspect_ratio": request.aspect_ratio or spec.default_aspect_ratio}
        answer = await self.request_json("POST", "/v1/images", json=body)
        return await self._job(answer, spec.id)

    async def status(self, native_id: str) -> Job:
        return await self._job(await self.request_json("GET", f"/v1/images/{native_id}"), None)

    async def _job(self, answer: Any, model: str | None) -> Job:
        with self.parsing("image job"):  # a KeyError or TypeError here is Acme's, not a bug
            native_id, status = str(answer["id"]), _STATUS[answer["status"]]
            urls = [str(output["url"]) for output in answer.get("outputs") or []]
            error = {"message": str(answer["error"]["message"])} if status == "failed" else None
        result = None
        if status == "succeeded":  # billed: the core hears of it before the download starts
            images = await self.download_outputs(native_id, urls)
            result = ImageResult(images=images, provider=self.instance_name, model=model or self.default_model(),
                                 job_id=self.job_id(native_id))
        return self.job(native_id, status, model=model, result=result, error=error)
