"""A local emulator of the nano-banana2.com API (``imagegen emulate nanobanana2``).

Routes, under ``/api/v1`` like the real service:

- ``POST /generate`` (JSON), ``POST /edit`` and ``POST /blend`` (multipart);
- ``GET /status/{job_id}``, ``GET /credits/balance``;
- output images from ``GET /files/{id}`` (the kit's route, standing in for the CDN).

Answer modes (``mode``, changeable at run time through the attribute):

- ``"sync"`` (default, the guide's example): the submit answers 200 with ``completed``
  and ``outputs`` after the latency model's delay;
- ``"async"``: the submit answers 202 ``{"id", "status": "pending", "created_at"}``; each
  ``GET /status`` advances the job, which completes on poll number ``ticks`` (earlier polls
  say ``processing``). With ``ticks=None``, or when a webhook URL was given, the job also
  completes on its own after the latency model's delay, on the emulator's ``clock`` (a
  `FakeClock` finishes it when the test advances the clock). ``processing_time_ms`` is the
  time from submit to completion on that clock.

Prompt markers script single jobs, spelled as in the other emulators (any letter case):
``[[fail]]`` ends the job ``failed`` (credits refunded), ``[[pending]]`` answers ``pending`` even
in sync mode. The older ``emulate:fail`` and ``emulate:pending`` still work.

Credits: each API key starts with ``initial_credits`` (or ``balances[key]``); a job costs
4 credits per image, reserved at submit; too few credits answers 402
``{"error": "Insufficient credits"}``. ``credits_used`` and ``balance`` are integers, as the
guide shows them. ``api_keys`` limits which keys are accepted (401 otherwise).

Webhooks: when ``webhookUrl`` (or ``webhook_url``) is given the finished job
is POSTed there as ``{job_id, status, outputs}``, retried ``webhook_attempts`` times;
``fail_webhooks=True`` makes every attempt fail. Counters ``webhook_attempts``,
``webhook_deliveries``, ``webhook_failures``, ``webhook_given_up`` count them.

Errors are ``{"error": "..."}`` (``error_key="message"`` switches the key); injected 429s
carry ``Retry-After`` (``retry_hint="body"`` puts ``retry_after`` in the body instead,
``"both"`` does both). With ``strict=True`` (default) unknown request fields are a 400, so
client tests notice when they send a field the guide does not show.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen.testing import Clock, Emulator, Fault, FaultPlan, JobTimeline, LatencyModel, Reject, read_bearer

from ._emulator_parts import (
    BLEND_FIELDS,
    EDIT_FIELDS,
    GENERATE_FIELDS,
    OUTPUT_FORMATS,
    EmuJob,
    FormData,
    WebhookSender,
    image_size,
    nearest_ratio,
    new_job_id,
    number,
    parse_multipart,
    whole,
)

__all__ = ["NanoBanana2Emulator", "create_emulator"]

PREFIX = "/api/v1"


def _spec_extra() -> tuple[dict[str, Any], float, float]:
    from ._provider import NanoBanana2Provider

    spec = NanoBanana2Provider.models()[0]
    price = spec.price
    assert price is not None
    return spec.extra, price.credits_per_image["*"], price.per_image_usd["*"]


class NanoBanana2Emulator(Emulator):
    """The nano-banana2.com API, in memory. See the module docs for the options."""

    name = "nanobanana2"

    def __init__(self, *, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                 mode: str = "sync", ticks: int | None = 2, initial_credits: float = 1000.0,
                 balances: dict[str, float] | None = None, api_keys: Any = None, clock: Clock | None = None,
                 image_scale: float = 1.0, max_upload_bytes: int = 10 * 1024 * 1024,
                 webhook_attempts: int = 3, webhook_backoff: float = 0.05, webhook_timeout: float = 5.0,
                 fail_webhooks: bool = False, retry_hint: str = "header", error_key: str = "error",
                 strict: bool = True) -> None:
        super().__init__(faults=faults, latency=latency, seed=seed, clock=clock, api_keys=api_keys)
        if mode not in ("sync", "async"):
            raise ValueError(f"mode must be 'sync' or 'async', not {mode!r}")
        if retry_hint not in ("header", "body", "both"):
            raise ValueError(f"retry_hint must be 'header', 'body' or 'both', not {retry_hint!r}")
        if not 0 < image_scale <= 1:
            raise ValueError(f"image_scale must be in (0, 1], not {image_scale!r}")
        self.mode = mode
        self.ticks = ticks
        self.initial_credits = float(initial_credits)
        self.image_scale = image_scale
        self.max_upload_bytes = max_upload_bytes
        self.retry_hint = retry_hint
        self.error_key = error_key
        self.strict = strict
        self.jobs: dict[str, EmuJob] = {}
        self._balances: dict[str, float] = dict(balances or {})
        self.webhooks = WebhookSender(self.counters, attempts=webhook_attempts, backoff=webhook_backoff,
                                      timeout=webhook_timeout, fail=fail_webhooks)
        #: The last requests received: ``{"path", "fields"}`` (files summarized), newest last.
        self.requests: deque[dict[str, Any]] = deque(maxlen=200)
        self._tasks: set[asyncio.Task[None]] = set()
        self._extra, self.credits_per_image, self.usd_per_image = _spec_extra()

    # -- control, for tests ------------------------------------------------------------------

    @property
    def fail_webhooks(self) -> bool:
        return self.webhooks.fail

    @fail_webhooks.setter
    def fail_webhooks(self, value: bool) -> None:
        self.webhooks.fail = value

    def balance(self, key: str) -> float:
        """The credit balance of API key ``key``."""
        with self._lock:
            return self._balances.setdefault(key, self.initial_credits)

    def set_balance(self, key: str, credits: float) -> None:
        with self._lock:
            self._balances[key] = float(credits)

    def wait_webhooks(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` webhook deliveries have settled (succeeded or given up)."""
        return self.webhooks.wait(count, timeout)

    # -- the kit's hooks ------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/generate", self._generate, methods=["POST"]),
            Route(f"{PREFIX}/edit", self._edit, methods=["POST"]),
            Route(f"{PREFIX}/blend", self._blend, methods=["POST"]),
            Route(f"{PREFIX}/status/{{job_id}}", self._status, methods=["GET"]),
            Route(f"{PREFIX}/credits/balance", self._balance, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        body: dict[str, Any] = {self.error_key: message}
        if fault is not None and fault.kind == "rate_limit" and fault.retry_after is not None \
                and self.retry_hint in ("body", "both"):
            body["retry_after"] = fault.retry_after
        return JSONResponse(body, status_code=status)

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        return {} if self.retry_hint == "body" else super().rate_limit_headers(fault)

    # -- handlers --------------------------------------------------------------------------------

    async def _generate(self, request: Request) -> Response:
        key = self._auth(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise Reject(400, "Request body must be JSON") from None
        if not isinstance(body, dict):
            raise Reject(400, "Request body must be a JSON object")
        self.requests.append({"path": "/generate", "fields": body})
        self._check_fields(body, GENERATE_FIELDS)
        prompt = self._prompt(body.get("prompt"))
        ratio = body.get("aspect_ratio", "1:1")
        if ratio not in self._sizes:
            raise Reject(400, f"Unsupported aspect_ratio {ratio!r}; use one of {', '.join(self._sizes)}")
        n = body.get("num_outputs", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 4:
            raise Reject(400, "num_outputs must be an integer from 1 to 4")
        self._check_generate_extras(body)
        job = self._new_job(request, key, prompt, n, body.get("output_format"), self._sizes[ratio],
                            self._webhook(body))
        return await self._answer(job, prompt)

    async def _edit(self, request: Request) -> Response:
        key = self._auth(request)
        form = await self._form(request, "/edit", EDIT_FIELDS)
        prompt = self._prompt(form.fields.get("prompt"))
        upload = form.files.get("image")
        if upload is not None:
            width, height = image_size(upload.data)
        elif form.fields.get("image_url") or form.fields.get("imageUrl"):
            width, height = 1024, 1024  # tolerated like the JS SDK's imageUrl; not fetched
        else:
            raise Reject(400, "Missing image file (field 'image')")
        ratio = form.fields.get("aspect_ratio", "auto")
        if ratio == "auto":
            ratio = nearest_ratio(width, height, self._sizes)
        if ratio not in self._sizes:
            raise Reject(400, f"Unsupported aspect_ratio {ratio!r}; use auto or one of {', '.join(self._sizes)}")
        job = self._new_job(request, key, prompt, 1, form.fields.get("output_format"), self._sizes[ratio],
                            self._webhook(form.fields))
        return await self._answer(job, prompt)

    async def _blend(self, request: Request) -> Response:
        key = self._auth(request)
        form = await self._form(request, "/blend", BLEND_FIELDS)
        prompt = self._prompt(form.fields.get("prompt"))
        missing = [name for name in ("image1", "image2") if name not in form.files]
        if missing:
            raise Reject(400, f"Missing image file(s): {', '.join(missing)}")
        width, height = image_size(form.files["image1"].data)
        image_size(form.files["image2"].data)
        if "blend_strength" in form.fields:
            number(form.fields["blend_strength"], "blend_strength", 0.0, 1.0)
        ratio = nearest_ratio(width, height, self._sizes)
        job = self._new_job(request, key, prompt, 1, None, self._sizes[ratio], self._webhook(form.fields))
        return await self._answer(job, prompt)

    async def _status(self, request: Request) -> Response:
        key = self._auth(request)
        job = self.jobs.get(request.path_params["job_id"])
        if job is None or job.key != key:
            raise Reject(404, "Job not found")
        if not job.done:
            if job.timeline.poll() == "done":
                await self._finish(job)
            else:
                job.status = "processing"
        return JSONResponse(job.body())

    async def _balance(self, request: Request) -> Response:
        key = self._auth(request)
        return JSONResponse({"balance": whole(self.balance(key))})

    # -- helpers ---------------------------------------------------------------------------------

    @cached_property
    def _sizes(self) -> dict[str, list[int]]:
        return dict(self._extra["native_sizes"])

    def _auth(self, request: Request) -> str:
        credential = self.api_keys.verify(read_bearer(request))
        if not credential.ok or credential.key is None:
            raise Reject(401, "Invalid or missing API key")
        return credential.key

    def _check_fields(self, fields: dict[str, Any], known: frozenset[str]) -> None:
        unknown = sorted(set(fields) - known)
        if unknown and self.strict:
            raise Reject(400, f"Unknown field(s): {', '.join(unknown)}")

    @staticmethod
    def _prompt(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise Reject(400, "prompt is required")
        return value

    @staticmethod
    def _webhook(fields: dict[str, Any]) -> str | None:
        url = fields.get("webhookUrl") or fields.get("webhook_url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise Reject(400, "webhookUrl must be an http(s) URL")
        return url

    def _check_generate_extras(self, body: dict[str, Any]) -> None:
        if "output_format" in body and body["output_format"] not in OUTPUT_FORMATS:
            raise Reject(400, "output_format must be png or jpeg")
        if "guidance_scale" in body:
            number(body["guidance_scale"], "guidance_scale", 0.0, 30.0)
        if "seed" in body and (isinstance(body["seed"], bool) or not isinstance(body["seed"], int)):
            raise Reject(400, "seed must be an integer")
        refs = body.get("reference_images", [])
        if not isinstance(refs, list) or not all(isinstance(r, str) and r.startswith("http") for r in refs):
            raise Reject(400, "reference_images must be a list of image URLs")
        if "style_strength" in body:
            number(body["style_strength"], "style_strength", 0.0, 1.0)
        if "style_reference_url" in body and not str(body["style_reference_url"]).startswith("http"):
            raise Reject(400, "style_reference_url must be an image URL")

    async def _form(self, request: Request, path: str, known: frozenset[str]) -> FormData:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_upload_bytes:
            raise Reject(413, f"File too large; the limit is {self.max_upload_bytes} bytes")
        body = await request.body()
        if len(body) > self.max_upload_bytes:
            raise Reject(413, f"File too large; the limit is {self.max_upload_bytes} bytes")
        form = parse_multipart(body, request.headers.get("content-type", ""))
        self.requests.append({"path": path, "fields": form.describe()})
        self._check_fields({**form.fields, **form.files}, known)
        return form

    def _new_job(self, request: Request, key: str, prompt: str, n: int, fmt: str | None,
                 size: list[int], webhook_url: str | None) -> EmuJob:
        if fmt is not None and fmt not in OUTPUT_FORMATS:
            raise Reject(400, "output_format must be png or jpeg")
        cost = self.credits_per_image * n
        with self._lock:
            balance = self._balances.setdefault(key, self.initial_credits)
            if balance < cost:
                raise Reject(402, "Insufficient credits")
            self._balances[key] = balance - cost
        megapixels = n * size[0] * size[1] / 1e6
        # With ticks and no webhook an async job waits for its polls; otherwise it is due after
        # the latency model's delay.
        running_s = self.latency.sample(megapixels)
        pending = self.mode == "async" or _marked(prompt, "pending")
        waits_for_polls = pending and self.ticks is not None and webhook_url is None
        timeline = JobTimeline(self.clock, running_s=float("inf") if waits_for_polls else running_s,
                               done_after_polls=self.ticks)
        job = EmuJob(id=new_job_id(), key=key, n=n, fmt=OUTPUT_FORMATS[fmt or "png"][0], size=(size[0], size[1]),
                     base_url=str(request.base_url).rstrip("/"), timeline=timeline, webhook_url=webhook_url,
                     fail=_marked(prompt, "fail"), credits=cost, label=prompt[:24])
        self.jobs[job.id] = job
        self.counters.charge(usd=self.usd_per_image * n, credits=cost, ref=job.id)
        return job

    async def _answer(self, job: EmuJob, prompt: str) -> Response:
        if self.mode == "sync" and not _marked(prompt, "pending"):
            await self.clock.sleep(job.timeline.due_at - self.clock.time())
            await self._finish(job)
            self._spawn(self._notify(job))
            return JSONResponse(job.body())
        if job.webhook_url is not None or self.ticks is None:
            self._spawn(self._run_in_background(job))
        return JSONResponse(job.body(), status_code=202)

    async def _run_in_background(self, job: EmuJob) -> None:
        await self.clock.sleep_until(job.timeline.due_at)
        if not job.done:
            await self._finish(job)
        await self._notify(job)

    async def _notify(self, job: EmuJob) -> None:
        if job.webhook_url is not None:
            await self.webhooks.deliver(job.webhook_url, job.webhook_payload())

    async def _finish(self, job: EmuJob) -> None:
        job.timeline.finish()
        job.processing_time_ms = round(job.timeline.elapsed_s() * 1000)
        if job.fail:
            job.status, job.error = "failed", "Generation failed: the model returned no image (emulated)"
            with self._lock:
                self._balances[job.key] = self._balances.get(job.key, 0.0) + job.credits
            self.counters.charge(usd=-self.usd_per_image * job.n, credits=-job.credits, ref=job.id)
            return
        mime = OUTPUT_FORMATS[job.fmt][1]
        width = max(16, round(job.size[0] * self.image_scale))
        height = max(16, round(job.size[1] * self.image_scale))
        for _ in range(job.n):
            data = self.image(width, height, job.fmt)
            path = self.store_file(data, mime)
            # The declared size is the native one, as the real example's JSON need not match the bytes.
            job.outputs.append({"url": job.base_url + path, "width": job.size[0], "height": job.size[1]})
        job.status = "completed"

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_TRUE = {"1", "true", "yes", "on"}


def _marked(prompt: str, marker: str) -> bool:
    """Whether `prompt` carries ``[[marker]]`` (any case) or the older ``emulate:marker``."""
    lowered = prompt.lower()
    return f"[[{marker}]]" in lowered or f"emulate:{marker}" in lowered


def _coerce(options: dict[str, Any]) -> dict[str, Any]:
    """Accept option values as strings too (``imagegen emulate nanobanana2 --option ticks=3``)."""
    kinds = {"ticks": int, "initial_credits": float, "image_scale": float, "max_upload_bytes": int,
             "webhook_attempts": int, "webhook_backoff": float, "webhook_timeout": float}
    out = dict(options)
    for name, value in options.items():
        if not isinstance(value, str):
            continue
        if name in kinds:
            out[name] = None if name == "ticks" and value.lower() in ("none", "") else kinds[name](value)
        elif name in ("fail_webhooks", "strict"):
            out[name] = value.lower() in _TRUE
        elif name == "api_keys":
            out[name] = [k for k in value.split(",") if k]
    return out


def create_emulator(*, faults: FaultPlan | None = None, latency: LatencyModel | None = None, seed: int = 0,
                    mode: str = "sync", **options: Any) -> NanoBanana2Emulator:
    """A nano-banana2.com emulator; ``mode`` is ``"sync"`` or ``"async"``, options as in the module docs.

    Without ``latency`` it takes as long as the guide claims ("2-3 seconds per image"):
    2 s plus 0.4 s per megapixel, +-20 %, scaled by ``IMAGEGEN_EMULATOR_TIME_SCALE``.
    """
    if latency is None:
        latency = LatencyModel(base=2.0, per_megapixel=0.4, jitter=0.2, seed=seed)
    return NanoBanana2Emulator(faults=faults, latency=latency, seed=seed, mode=mode, **_coerce(options))
