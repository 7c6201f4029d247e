"""Faults for output downloads: an ASGI layer in front of a real emulator's ``/files/`` route.

The emulator kit's fault plan covers status codes, stalls before the answer and truncated
bodies; a CDN can also answer a redirect loop, a page that is not an image, or headers and
then nothing. ``OutputFaults`` adds those, for the paths under ``/files/`` only, so the vendor
API itself stays healthy (the job is accepted and billed, its outputs cannot be fetched).
"""

from __future__ import annotations

import asyncio
from typing import Any

KINDS = ("403", "404", "non_image", "truncated", "redirect_loop", "stalled_body")


class OutputFaults:
    """Wraps an ASGI app; ``kind`` (one of ``KINDS``, or None) applies to every ``/files/`` request."""

    def __init__(self, app: Any, kind: str | None = None) -> None:
        self.app = app
        self.kind = kind
        self.hits = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/files/") or self.kind is None:
            await self.app(scope, receive, send)
            return
        self.hits += 1
        kind = self.kind
        if kind in ("403", "404"):
            await _answer(send, int(kind), b"AccessDenied", "application/xml")
        elif kind == "non_image":
            await _answer(send, 200, b"<html><body>Sign in to continue</body></html>", "image/png")
        elif kind == "redirect_loop":
            await _answer(send, 302, b"", "text/plain", [(b"location", scope["path"].encode())])
        elif kind == "truncated":
            await self._truncated(scope, receive, send)
        elif kind == "stalled_body":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"image/png"), (b"content-length", b"100000")]})
            await send({"type": "http.response.body", "body": b"\x89PNG\r\n\x1a\n", "more_body": True})
            await asyncio.sleep(3600)  # a CDN that sent the headers and then nothing
        else:  # pragma: no cover - a typo in a test
            raise ValueError(kind)

    async def _truncated(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The real image with its second half cut off, served as a complete (shorter) answer."""
        start: dict[str, Any] = {}
        body: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        data = b"".join(body)
        half = data[: max(64, len(data) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(half)).encode())]})
        await send({"type": "http.response.body", "body": half})


async def _answer(send: Any, status: int, body: bytes, ctype: str, extra: list[tuple[bytes, bytes]] | None = None,
                  ) -> None:
    headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
