"""Gemini's Batch API and the Files API it uses, in the emulator.

Routes, as google-genai 3.x calls them (``client.batches.*``, ``client.files.*``):

- ``POST /{v}/models/{model}:batchGenerateContent``: inline requests or ``inputConfig.fileName``;
  answers the Operation (``batches/<id>``, state ``BATCH_STATE_PENDING``);
- ``GET /{v}/batches/{id}``, ``GET /{v}/batches``, ``POST /{v}/batches/{id}:cancel``,
  ``DELETE /{v}/batches/{id}``;
- ``POST /upload/{v}/files`` (resumable: ``start``, then ``upload, finalize``),
  ``GET /{v}/files/{id}``, ``GET /{v}/files/{id}:download?alt=media`` (also under
  ``/download/``), ``DELETE /{v}/files/{id}``.

A batch is pending for the first quarter of ``turnaround_s`` (on ``clock``), running for the
rest, then over; its members are answered then, each exactly as ``generateContent`` would
(validation errors, prompt markers and refusals included) but billed at the model's batch
discount. Inline input gets inline output, carried twice in the Operation (under ``response``
and ``metadata.output``: the size that made ``batches.get`` fail with 503/504 for days); file
input gets a JSONL answers file (``file_results="inline"`` answers inline anyway, as Gemini
sometimes does). ``batchStats`` counts are strings, per-member errors ``google.rpc.Status``
with gRPC codes.

Scripting: a display name with ``[[BATCH:EXPIRED]]``, ``[[BATCH:FAILED]]`` or
``[[BATCH:SLOW]]`` (never finishes on its own) decides the batch's fate; ``member_faults``
(a `FaultPlan`, drawn once per member) fails members (``rate_limit`` → 8 RESOURCE_EXHAUSTED,
``server_error`` → 13 INTERNAL or 14 UNAVAILABLE, ``timeout`` → 4 DEADLINE_EXCEEDED); the kit's
fault plan with ``path=/batches/`` injects the 503/504-on-get pitfall; ``get_pitfall_bytes``
makes every get of an inline batch whose output is larger than that answer 503 or 504, forever.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen import ModelSpec
from imagegen.testing import FaultPlan, Reject

from ._emulator_answer import build_answer
from ._emulator_request import check_request
from ._emulator_shapes import MARKER, camelize, google_error, prompt_of

if TYPE_CHECKING:  # pragma: no cover
    from .emulator import GeminiEmulator

__all__ = ["BatchRoutes"]

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta."
_FAULT_STATUS = {"rate_limit": (8, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
                 "timeout": (4, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
                 "server_error": (13, "INTERNAL", "An internal error has occurred.")}


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _File:
    name: str
    data: bytes
    mime_type: str
    display_name: str
    source: str
    created: str = field(default_factory=_now_text)

    def resource(self, base_url: str) -> dict[str, Any]:
        digest = base64.b64encode(hashlib.sha256(self.data).digest()).decode()
        out = {"name": self.name, "displayName": self.display_name, "mimeType": self.mime_type,
               "sizeBytes": str(len(self.data)), "createTime": self.created, "updateTime": self.created,
               "sha256Hash": digest, "uri": f"{base_url}/v1beta/{self.name}", "state": "ACTIVE",
               "source": self.source}
        if self.source == "GENERATED":
            out["downloadUri"] = f"{base_url}/v1beta/{self.name}:download?alt=media"
        return out


@dataclass
class _Batch:
    name: str
    spec: ModelSpec
    display_name: str
    members: list[tuple[str, dict[str, Any]]]
    from_file: bool
    started: float
    created: str = field(default_factory=_now_text)
    fate: str = "SUCCEEDED"
    cancelled: bool = False
    ended: str | None = None
    #: Per key: {"response": ...} or {"error": ...}, once answered.
    answers: dict[str, dict[str, Any]] | None = None
    output: dict[str, Any] | None = None


class BatchRoutes:
    """The batch and file routes of one `GeminiEmulator`; see the module docstring."""

    max_files = 64

    def __init__(self, emulator: GeminiEmulator, *, turnaround_s: float = 0.0,
                 member_faults: FaultPlan | None = None, file_results: str = "file",
                 get_pitfall_bytes: int | None = None) -> None:
        if file_results not in ("file", "inline"):
            raise ValueError(f"file_results must be 'file' or 'inline', got {file_results!r}")
        self.emulator = emulator
        self.turnaround_s = turnaround_s
        # The emulator's clock (the kit's `Clock`): a `FakeClock` moves batches along by hand.
        self.clock = emulator.clock.time
        self.member_faults = member_faults or FaultPlan()
        self.file_results = file_results
        self.get_pitfall_bytes = get_pitfall_bytes
        self.batches: dict[str, _Batch] = {}
        self.files: OrderedDict[str, _File] = OrderedDict()
        self._uploads: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._pitfall_turn = itertools.count()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{version}/models/{model}:batchGenerateContent", self._create, methods=["POST"]),
            Route("/{version}/batches/{batch}:cancel", self._cancel, methods=["POST"]),
            Route("/{version}/batches/{batch}", self._get, methods=["GET"]),
            Route("/{version}/batches/{batch}", self._delete, methods=["DELETE"]),
            Route("/{version}/batches", self._list, methods=["GET"]),
            Route("/upload/{version}/files", self._upload, methods=["POST"]),
            Route("/download/{version}/files/{file}:download", self._download, methods=["GET"]),
            Route("/{version}/files/{file}:download", self._download, methods=["GET"]),
            Route("/{version}/files/{file}", self._file, methods=["GET"]),
            Route("/{version}/files/{file}", self._delete_file, methods=["DELETE"]),
        ]

    # -- ids and files -------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        digest = hashlib.sha256(f"{kind}:{self.emulator.seed}:{next(self._numbers)}".encode()).hexdigest()
        return digest[:20]

    def _keep_file(self, data: bytes, mime_type: str, display_name: str, source: str) -> _File:
        file = _File(f"files/{self._new_id('file')}", data, mime_type, display_name, source)
        with self._lock:
            self.files[file.name] = file
            while len(self.files) > self.max_files:
                self.files.popitem(last=False)
        return file

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def _guard(self, request: Request, handler: Callable[[], Awaitable[Response]], *,
                     auth: bool = True) -> Response:
        try:
            if auth:
                self.emulator.authenticate(request, "gemini")
            if request.path_params.get("version", "v1beta") not in ("v1", "v1beta"):
                raise Reject(404, f"Method not found for API version {request.path_params['version']}.")
            return await handler()
        except Reject as reject:
            return self.emulator.reject_response(reject)

    # -- batches ---------------------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        async def handle() -> Response:
            spec = self.emulator._model(request.path_params["model"].removeprefix("models/"),
                                        request.path_params["version"], vertex=False)
            body = await self._json(request)
            batch = body.get("batch")
            if not isinstance(batch, dict):
                raise Reject(400, "* BatchGenerateContentRequest.batch: batch is not specified\n")
            members, from_file = self._members(camelize(batch.get("inputConfig") or {}))
            display = str(batch.get("displayName") or "")
            name = f"batches/{self._new_id('batch')}"
            fate = next((kind.upper() for marker, kind, _ in MARKER.findall(display) if marker == "BATCH"), "SUCCEEDED")
            entry = _Batch(name, spec, display, members, from_file, self.clock(), fate=fate)
            with self._lock:
                self.batches[name] = entry
            return self._operation(entry, self._base(request), advance=False)
        return await self._guard(request, handle)

    def _members(self, config: dict[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        if config.get("fileName"):
            file = self.files.get(str(config["fileName"]))
            if file is None:
                raise Reject(404, f"File {config['fileName']} not found.")
            lines = [json.loads(line) for line in file.data.splitlines() if line.strip()]
            return [(str(line.get("key", i)), line.get("request") or {}) for i, line in enumerate(lines)], True
        requests = (config.get("requests") or {}).get("requests")
        if not isinstance(requests, list) or not requests:
            raise Reject(400, "* BatchGenerateContentRequest.batch.input_config: input_config is "
                                           "not specified\n")
        return [(str((item.get("metadata") or {}).get("key", i)), item.get("request") or {})
                for i, item in enumerate(requests)], False

    async def _get(self, request: Request) -> Response:
        async def handle() -> Response:
            entry = self._batch(request)
            response = self._operation(entry, self._base(request))
            if self.get_pitfall_bytes is not None and entry.answers is not None and not entry.from_file \
                    and len(response.body) > self.get_pitfall_bytes:
                # The pitfall of spec §8: large inline image batches made batches.get fail for days.
                if next(self._pitfall_turn) % 2:
                    return google_error(504, "Deadline expired before operation could complete.")
                return google_error(503, "The service is currently unavailable.")
            return response
        return await self._guard(request, handle)

    async def _cancel(self, request: Request) -> Response:
        async def handle() -> Response:
            entry = self._batch(request)
            self._advance(entry, self._base(request))
            if entry.answers is None:
                entry.cancelled, entry.ended = True, _now_text()  # cancel ends the batch at once
            return JSONResponse({})
        return await self._guard(request, handle)

    async def _delete(self, request: Request) -> Response:
        async def handle() -> Response:
            entry = self._batch(request)
            with self._lock:
                self.batches.pop(entry.name, None)
            return JSONResponse({})
        return await self._guard(request, handle)

    async def _list(self, request: Request) -> Response:
        async def handle() -> Response:
            base = self._base(request)
            operations = [json.loads(bytes(self._operation(b, base).body)) for b in list(self.batches.values())]
            return JSONResponse({"operations": operations})
        return await self._guard(request, handle)

    def _batch(self, request: Request) -> _Batch:
        name = f"batches/{request.path_params['batch']}"
        entry = self.batches.get(name)
        if entry is None:
            raise Reject(404, f"Batch {name} not found.")
        return entry

    def _state(self, entry: _Batch) -> str:
        if entry.cancelled:
            return "CANCELLED"
        elapsed = self.clock() - entry.started
        if entry.fate == "SLOW" or elapsed < self.turnaround_s:
            return "PENDING" if entry.fate != "SLOW" and elapsed < self.turnaround_s / 4 else "RUNNING"
        return entry.fate if entry.fate in ("EXPIRED", "FAILED", "CANCELLED") else "SUCCEEDED"

    def _advance(self, entry: _Batch, base_url: str) -> str:
        """The batch's state now; answers its members the first time it is seen over."""
        state = self._state(entry)
        if state == "SUCCEEDED" and entry.answers is None:
            entry.answers = {key: self._answer(entry, key, body) for key, body in entry.members}
            entry.ended = _now_text()
            if entry.from_file and self.file_results == "file":
                lines = b"".join(json.dumps({"key": key, **answer}).encode() + b"\n"
                                 for key, answer in entry.answers.items())
                file = self._keep_file(lines, "application/jsonl", f"{entry.name} results", "GENERATED")
                entry.output = {"responsesFile": file.name}
            else:
                answers = [{**answer, "metadata": {"key": key}} for key, answer in entry.answers.items()]
                entry.output = {"inlinedResponses": {"inlinedResponses": answers}}
        elif state in ("EXPIRED", "FAILED") and entry.ended is None:
            entry.ended = _now_text()
        return state

    def _answer(self, entry: _Batch, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """One member, answered as ``generateContent`` would, billed at the batch price."""
        fault = self.member_faults.pick("BATCH", f"/batch-member/{entry.name}/{key}")
        if fault is not None:
            code, status, message = _FAULT_STATUS.get(fault.kind, _FAULT_STATUS["server_error"])
            if fault.kind == "server_error" and fault.status == 503:
                code, status, message = 14, "UNAVAILABLE", "The service is currently unavailable."
            return {"error": {"code": code, "message": message, "status": status}}
        request = camelize({k: v for k, v in body.items() if k != "model"})
        try:
            settings = check_request(request, entry.spec, vertex=False)
            prompt, images = prompt_of(request)
            self.emulator._scripted_error(prompt, entry.spec)
            built = build_answer(self.emulator, prompt, images, settings, entry.spec, vertex=False)
        except Reject as reject:
            error = json.loads(bytes(self.emulator.reject_response(reject).body))["error"]
            return {"error": {"code": _grpc_code(int(error["code"])), "message": error["message"],
                              "status": error.get("status")}}
        answer, usd = built.body, built.usd
        if usd:
            discount = entry.spec.price.batch_discount if entry.spec.price and entry.spec.price.batch_discount else 1.0
            self.emulator.counters.charge(usd=round(usd * discount, 9), ref=f"{entry.name}/{key}")
        return {"response": answer}

    def _operation(self, entry: _Batch, base_url: str, *, advance: bool = True) -> JSONResponse:
        # A batch just created is pending, however soon it will be over.
        state = self._advance(entry, base_url) if advance else "PENDING"
        total = len(entry.members)
        stats = {"requestCount": str(total)}
        if entry.answers is not None:
            failed = sum(1 for answer in entry.answers.values() if "error" in answer)
            stats.update(successfulRequestCount=str(total - failed), failedRequestCount=str(failed))
        elif state in ("PENDING", "RUNNING"):
            stats["pendingRequestCount"] = str(total)
        metadata: dict[str, Any] = {"@type": _TYPE + "GenerateContentBatch", "model": f"models/{entry.spec.id}",
                                    "displayName": entry.display_name, "createTime": entry.created,
                                    "updateTime": entry.ended or entry.created, "batchStats": stats,
                                    "state": f"BATCH_STATE_{state}", "name": entry.name}
        operation: dict[str, Any] = {"name": entry.name, "metadata": metadata}
        if entry.ended is not None:
            metadata["endTime"] = entry.ended
            operation["done"] = True
        if entry.output is not None:
            metadata["output"] = entry.output
            operation["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **entry.output}
        elif state == "FAILED":
            operation["error"] = {"code": 13, "message": "The batch failed: an internal error has occurred."}
        return JSONResponse(operation, media_type="application/json; charset=UTF-8")

    # -- files -------------------------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        async def handle() -> Response:
            command = request.headers.get("x-goog-upload-command", "").replace(" ", "").lower()
            upload_id = request.query_params.get("upload_id")
            if upload_id is None:
                if command != "start" or request.headers.get("x-goog-upload-protocol", "").lower() != "resumable":
                    raise Reject(400, "Only resumable uploads are supported.")
                info = (await self._json(request)).get("file") or {}
                upload_id = self._new_id("upload")
                self._uploads[upload_id] = {
                    "data": bytearray(), "display_name": str(info.get("displayName") or ""),
                    "mime_type": request.headers.get("x-goog-upload-header-content-type")
                    or str(info.get("mimeType") or "application/octet-stream")}
                url = f"{self._base(request)}/upload/{request.path_params['version']}/files?upload_id={upload_id}" \
                      "&upload_protocol=resumable"
                return Response(b"", headers={"x-goog-upload-url": url, "x-goog-upload-status": "active"})
            upload = self._uploads.get(upload_id)
            if upload is None:
                raise Reject(404, "Upload session not found.")
            upload["data"] += await request.body()
            if "finalize" not in command.split(","):
                return Response(b"", headers={"x-goog-upload-status": "active"})
            del self._uploads[upload_id]
            file = self._keep_file(bytes(upload["data"]), upload["mime_type"], upload["display_name"], "UPLOADED")
            return JSONResponse({"file": file.resource(self._base(request))}, headers={"x-goog-upload-status": "final"})
        # Only the start call carries the API key: the upload URL (its upload_id) stands for it
        # afterwards, and google-genai sends the chunks without the key.
        return await self._guard(request, handle, auth="upload_id" not in request.query_params)

    def _stored(self, request: Request) -> _File:
        name = f"files/{request.path_params['file']}"
        file = self.files.get(name)
        if file is None:
            raise Reject(404, f"File {name} not found or expired.")
        return file

    async def _file(self, request: Request) -> Response:
        async def handle() -> Response:
            return JSONResponse(self._stored(request).resource(self._base(request)))
        return await self._guard(request, handle)

    async def _download(self, request: Request) -> Response:
        async def handle() -> Response:
            file = self._stored(request)
            return Response(file.data, media_type=file.mime_type)
        return await self._guard(request, handle)

    async def _delete_file(self, request: Request) -> Response:
        async def handle() -> Response:
            with self._lock:
                self.files.pop(self._stored(request).name, None)
            return JSONResponse({})
        return await self._guard(request, handle)

    async def _json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise Reject(400, "Invalid JSON payload received. Unexpected token.") from None
        if not isinstance(body, dict):
            raise Reject(400, "Invalid JSON payload received. Expected an object.")
        return body


#: HTTP statuses of generateContent errors as the gRPC codes a batch member's Status carries.
_HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 500: 13, 501: 12, 503: 14, 504: 4}


def _grpc_code(http: int) -> int:
    return _HTTP_TO_GRPC.get(http, 2)
