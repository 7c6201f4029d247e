"""Wireflow emulator: the presigned upload flow for large files, and feedback (G2, G13).

- ``POST /media/upload-url`` ``{filename?, contentType?, size?}`` (the body is UNKNOWN; these
  are read when present) answers ``{data: {uploadUrl, method: "PUT", mediaId, headers}}``;
- ``PUT <uploadUrl>`` with the raw bytes and the signed headers, and **no** Authorization (it
  is a storage host's signed URL): 200; a ``Content-Type`` other than the signed one is a 403,
  as a storage host refuses a request that does not match its signature;
- ``POST /media/upload-url/complete`` ``{mediaId}`` answers ``{data: {url}}`` and lists the file
  under ``GET /media``.
- ``POST /feedback`` ``{title, body, category?, context?}``: 201 ``{id, message}``; more than five
  in a minute per key is a 429 ``feedback_burst_limited``. ``GET`` is a 405.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagegen.testing import Reject

from ._emulator_library import MAX_MEDIA_BYTES, hosted
from ._emulator_state import Account

if TYPE_CHECKING:
    from .emulator import WireflowEmulator

__all__ = ["complete_upload", "feedback", "start_upload", "storage_routes"]

FEEDBACK_BURST = 5
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4",
               "audio/mpeg": "mp3"}


@dataclass
class _PendingUpload:
    owner: Account
    content_type: str
    size: int | None
    filename: str | None
    data: bytes | None = None


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise Reject(400, "Invalid JSON body", code="invalid_json") from None
    if not isinstance(body, dict):
        raise Reject(400, "The body must be a JSON object", code="invalid_json")
    return body


def _pending(emu: WireflowEmulator) -> dict[str, _PendingUpload]:
    pending: dict[str, _PendingUpload] = emu.pending_uploads
    return pending


async def start_upload(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request)
    content_type = str(body.get("contentType") or body.get("mimeType") or "application/octet-stream")
    size = body.get("size")
    if isinstance(size, int) and size > MAX_MEDIA_BYTES:
        raise Reject(413, "File too large (25 MB max)", code="payload_too_large")
    token = secrets.token_hex(8)
    media_id = f"{token}.{_EXTENSIONS.get(content_type, 'bin')}"
    _pending(emu)[media_id] = _PendingUpload(account, content_type, size if isinstance(size, int) else None,
                                             body.get("filename") if isinstance(body.get("filename"), str) else None)
    headers = {"Content-Type": content_type, **({"Content-Length": str(size)} if isinstance(size, int) else {})}
    upload_url = f"{str(request.base_url).rstrip('/')}/_storage/{media_id}?sig={secrets.token_hex(6)}"
    return JSONResponse({"data": {"uploadUrl": upload_url, "method": "PUT", "mediaId": media_id,
                                  "headers": headers}})


async def complete_upload(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    media_id = (await _body(request)).get("mediaId")
    pending = _pending(emu).get(str(media_id))
    if pending is None or pending.owner.user != account.user:
        raise Reject(404, "Upload not found", code="not_found")
    if pending.data is None:
        raise Reject(409, "Nothing was uploaded to the upload URL yet", code="upload_incomplete")
    del _pending(emu)[str(media_id)]
    return hosted(emu, request, account, pending.data, pending.content_type, source=pending.filename)


def storage_routes(emu: WireflowEmulator) -> list[Route]:
    """The signed-URL host: ``PUT /_storage/{mediaId}`` (no API key, outside ``/api/v1``)."""

    async def put(request: Request) -> Response:
        pending = _pending(emu).get(request.path_params["media_id"])
        if pending is None or not request.query_params.get("sig"):
            return Response(b"<Error><Code>NoSuchUpload</Code></Error>", status_code=404, media_type="application/xml")
        if request.headers.get("content-type", "").split(";")[0] != pending.content_type:
            return Response(b"<Error><Code>SignatureDoesNotMatch</Code></Error>", status_code=403,
                            media_type="application/xml")
        data = await request.body()
        if len(data) > MAX_MEDIA_BYTES or (pending.size is not None and len(data) != pending.size):
            return Response(b"<Error><Code>BadDigest</Code></Error>", status_code=400, media_type="application/xml")
        pending.data = data
        return Response(status_code=200)

    return [Route("/_storage/{media_id}", put, methods=["PUT"])]


async def feedback(emu: WireflowEmulator, request: Request, account: Account | None) -> Response:
    assert account is not None
    body = await _body(request)
    if not isinstance(body.get("title"), str) or not isinstance(body.get("body"), str):
        raise Reject(400, "Missing required fields: title, body", code="missing_fields")
    now = emu.clock.time()
    sent = [t for t in account.feedback_times if now - t < 60]
    if len(sent) >= FEEDBACK_BURST:
        raise Reject(429, "Too much feedback at once; try again in a minute", code="feedback_burst_limited",
                     headers={"Retry-After": str(max(1, round(60 - (now - sent[0]))))})
    account.feedback_times = [*sent, now]
    emu.counters.incr("feedback")
    return JSONResponse({"id": emu.new_id("fb_"), "message": "Thanks, we read every note."}, status_code=201)
