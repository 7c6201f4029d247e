"""The base class of provider emulators, and the routes every emulator gets from the kit."""

from __future__ import annotations

import hashlib
import http
import itertools
import json
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ._auth import ApiKeys
from ._clock import Clock, SystemClock
from ._counters import Counters
from ._faults import Fault, FaultPlan
from ._images import synth_image
from ._latency import LatencyModel
from ._middleware import EmulatorMiddleware
from ._reject import Reject

__all__ = ["Emulator"]


class Emulator:
    """Base class for a local, faithful imitation of one vendor's HTTP API.

    A subclass sets `name`, returns its vendor routes from `routes`, and overrides
    `error_response` (and perhaps `reject_response`, `rate_limit_headers`) to speak the
    vendor's error format. Handlers raise `Reject` to answer with an error, check keys with
    `api_keys`, read the time from `clock` (never `time.time`), call
    ``await self.simulate_latency(megapixels)`` where the vendor would generate,
    ``self.counters.charge(...)`` where it would bill, and `image`/`store_file`/`file_url` to
    produce results. The kit adds, in front of every route, call counting and the injection
    of faults picked by `faults` (which may be replaced at any time); it answers a path no
    route knows (404) or a wrong method (405) in the vendor's envelope too; and it adds these
    routes:

    - ``GET /files/{file_id}``: bytes kept by `store_file`;
    - ``GET /_emulator/counters``: ``counters.snapshot()`` as JSON;
    - ``POST /_emulator/reset``: zero the counters;
    - ``PUT /_emulator/faults`` with ``{"spec": "..."}``: replace the fault plan with
      ``FaultPlan.parse(spec)``, for emulators running in another process.
    """

    name: ClassVar[str] = "emulator"
    #: Stored files kept before the oldest is forgotten (its URL then answers 404, as an
    #: expired signed URL would); bounds memory in long benchmark or demo runs.
    max_files: ClassVar[int] = 256

    def __init__(
        self,
        *,
        faults: FaultPlan | None = None,
        latency: LatencyModel | None = None,
        seed: int = 0,
        clock: Clock | None = None,
        api_keys: ApiKeys | Iterable[str] | Mapping[str, Mapping[str, Any]] | str | None = None,
    ) -> None:
        self.counters = Counters()
        self.faults = faults if faults is not None else FaultPlan()
        self.latency = latency if latency is not None else LatencyModel.none()
        self.seed = seed
        #: Where the emulator reads the time and lets it pass; a `FakeClock` in fast tests.
        self.clock: Clock = clock if clock is not None else SystemClock()
        #: The keys it accepts (default: any non-empty key).
        self.api_keys = ApiKeys.of(api_keys)
        self._files: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._file_numbers = itertools.count(1)
        self._image_numbers = itertools.count(1)
        self._app: Starlette | None = None

    def routes(self) -> list[BaseRoute]:
        """The vendor API's routes; subclasses override. They take precedence over the kit's."""
        return []

    @property
    def app(self) -> Starlette:
        """The ASGI app: `routes` plus the kit's routes, behind the kit's middleware."""
        with self._lock:
            if self._app is None:
                routes = [*self.routes(), *self._kit_routes()]
                middleware = Middleware(EmulatorMiddleware, emulator=self, routes=routes)
                handlers: dict[Any, Any] = {
                    Reject: self._on_reject,
                    HTTPException: self._on_http_exception,
                }
                self._app = Starlette(
                    routes=routes, middleware=[middleware], exception_handlers=handlers
                )
            return self._app

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        """The vendor's error envelope; `fault` is set when the error is an injected one.

        The default is ``{"error": {"code": status, "message": message}}``.
        """
        return JSONResponse({"error": {"code": status, "message": message}}, status_code=status)

    def reject_response(self, reject: Reject) -> Response:
        """The answer to a `Reject`: by default `error_response` plus the reject's headers.

        Vendors with error codes or extra error fields override this to place them.
        """
        response = self.error_response(reject.status, reject.message)
        response.headers.update(reject.headers)
        return response

    def route_error_response(self, request: Request, status: int) -> Response:
        """The answer for a path no route serves (404) or a method it does not (405).

        Real APIs answer these in their JSON envelope too, never with a framework's plain text.
        """
        if status == 404:
            message = f"No route for {request.method} {request.url.path}."
        else:
            message = f"{http.HTTPStatus(status).phrase}: {request.method} {request.url.path}."
        return self.error_response(status, message)

    async def simulate_latency(self, megapixels: float = 0.0) -> float:
        """Let the latency model's delay for `megapixels` pass on `clock`; return it (seconds).

        On a `FakeClock` this returns at once with the clock moved on.
        """
        seconds = self.latency.sample(megapixels)
        await self.clock.sleep(seconds)
        return seconds

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        """Headers added to an injected 429: ``Retry-After`` when the fault has a hint.

        Retry-After is whole seconds, so fractional hints round down (0.5 s sends "0"),
        which keeps retry tests fast. Vendors that put the hint in the body override this.
        """
        if fault.retry_after is None:
            return {}
        return {"Retry-After": str(int(fault.retry_after))}

    def store_file(self, data: bytes, mime_type: str) -> str:
        """Keep `data` in memory and return the path, ``/files/<id>``, that serves it."""
        number = next(self._file_numbers)
        # Opaque like a vendor's ids, yet the same for the same seed and order of requests.
        file_id = hashlib.sha256(f"{self.name}:{self.seed}:{number}".encode()).hexdigest()[:24]
        with self._lock:
            self._files[file_id] = (data, mime_type)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return f"/files/{file_id}"

    def stored_file(self, url: str) -> tuple[bytes, str] | None:
        """The bytes and MIME type behind a URL (or path) that `store_file` handed out, on any
        host, or ``None`` if it is not one of this emulator's files (or was forgotten)."""
        path = urllib.parse.urlsplit(url).path
        prefix, _, file_id = path.rpartition("/")
        if not prefix.endswith("/files"):
            return None
        with self._lock:
            return self._files.get(file_id)

    def file_url(self, request: Request, path: str) -> str:
        """The absolute URL of `path` (from `store_file`) as seen by the client of `request`."""
        return str(request.base_url).rstrip("/") + "/" + path.lstrip("/")

    def image(
        self, width: int, height: int, fmt: str = "png", *, label: str | None = None
    ) -> bytes:
        """A synthetic image (see `synth_image`) with a seed derived from `seed`.

        With a `label` the seed comes from the label, so equal labels give equal images;
        without one, each call gets the next seed, so successive results differ.
        """
        key = f"label:{label}" if label is not None else f"n:{next(self._image_numbers)}"
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return synth_image(width, height, fmt, seed=int.from_bytes(digest[:8]), label=label)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} seed={self.seed}>"

    async def _on_reject(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Reject)
        return self.reject_response(exc)

    async def _on_http_exception(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            response = self.route_error_response(request, exc.status_code)
        else:
            response = self.error_response(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    def _kit_routes(self) -> list[BaseRoute]:
        return [
            Route("/files/{file_id}", self._get_file, methods=["GET"]),
            Route("/_emulator/counters", self._get_counters, methods=["GET"]),
            Route("/_emulator/reset", self._reset_counters, methods=["POST"]),
            Route("/_emulator/faults", self._put_faults, methods=["PUT"]),
        ]

    async def _get_file(self, request: Request) -> Response:
        with self._lock:
            stored = self._files.get(request.path_params["file_id"])
        if stored is None:
            raise Reject(404, "File not found or expired.")
        data, mime_type = stored
        return Response(data, media_type=mime_type)

    async def _get_counters(self, request: Request) -> Response:
        return JSONResponse(self.counters.snapshot())

    async def _reset_counters(self, request: Request) -> Response:
        self.counters.reset()
        return JSONResponse({"reset": True})

    async def _put_faults(self, request: Request) -> Response:
        try:
            spec = json.loads(await request.body())["spec"]
            if not isinstance(spec, str):
                raise TypeError("spec must be a string")
            plan = FaultPlan.parse(spec)
        except (ValueError, KeyError, TypeError) as exc:
            raise Reject(400, f'Expected {{"spec": "<fault spec>"}}: {exc}') from None
        self.faults = plan
        return JSONResponse({"spec": spec, "plan": repr(plan)})
