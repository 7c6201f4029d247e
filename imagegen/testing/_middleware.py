"""The ASGI middleware every emulator runs behind: counts calls and renders injected faults.

It is plain ASGI rather than Starlette's ``BaseHTTPMiddleware`` because faults need control
that a Response object does not give: cutting a connection mid-body, rewriting the body of a
response the real handler produced. On the happy path it costs a route lookup and a dict
update, and it never sleeps.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import httpx
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._faults import Fault

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = ["ConnectionDropped", "EmulatorMiddleware"]

DEFAULT_TIMEOUT_DELAY = 5.0
MALFORMED_BODY = b'{"unexpected": "shape"}'
# The drop fault promises this many body bytes and sends only the prefix below.
_DROP_PROMISED_LENGTH = 4096
_DROP_PREFIX = b'{"id": "dropped", "data": ['


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the ``drop`` fault to make the server cut the connection mid-response.

    Over real HTTP uvicorn closes the socket (its log of this error is filtered out) and the
    client sees an httpx transport error. Through `asgi_transport` the exception reaches the
    client itself, and being an ``httpx.RemoteProtocolError`` it looks the same there.
    """


class EmulatorMiddleware:
    """Counts each request under its route template, then injects the fault plan's pick."""

    def __init__(self, app: ASGIApp, *, emulator: Emulator, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.emulator = emulator
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        emulator = self.emulator
        # Control-plane calls would otherwise show up in the very counts they read.
        if not path.startswith("/_emulator/"):
            emulator.counters._record_call(f"{method} {self.route_template(scope)}")
        fault = emulator.faults.pick(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        emulator.counters._record_fault(fault.kind)
        if fault.after_chunks is not None:
            await self.render_mid_stream(fault, scope, receive, send)
            return
        render = getattr(self, f"render_{fault.kind}")
        await render(fault, scope, receive, send)

    def route_template(self, scope: Scope) -> str:
        """The path template of the route that will handle `scope`, else the raw path."""
        partial = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", scope["path"]))
            if match is Match.PARTIAL and partial is None:
                partial = route  # e.g. right path, wrong method: the router answers 405
        return str(getattr(partial, "path", scope["path"]))

    def error(self, status: int, message: str, fault: Fault) -> Response:
        return self.emulator.error_response(status, message, fault=fault)

    async def render_rate_limit(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        response = self.error(429, "Rate limit exceeded; retry later. (injected fault)", fault)
        response.headers.update(self.emulator.rate_limit_headers(fault))
        await response(scope, receive, send)

    async def render_server_error(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = fault.status or 503
        message = f"{_phrase(status)}. (injected fault)"
        await self.error(status, message, fault)(scope, receive, send)

    async def render_timeout(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        delay = fault.delay if fault.delay is not None else DEFAULT_TIMEOUT_DELAY
        if await _sleep_unless_disconnected(delay, receive):
            return  # the client gave up first, as clients with a read timeout do
        response = self.error(504, "Deadline exceeded while generating. (injected fault)", fault)
        await response(scope, receive, send)

    async def render_drop(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The real handler answers (and bills, as the vendor would: its answer was made), then
        the connection is cut after the status line and part of the body.

        A vendor bills the call it answered, whether or not the answer reaches the client: the
        emulator's charges then say what the vendor's bill would, and a client that sends the
        call again is seen paying twice.
        """
        start, body = await _answer_of(self.app, scope, receive)
        if start is None:
            raise RuntimeError("the handler returned without starting a response")
        await _drop(send, start, body)

    async def render_mid_stream(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """``drop``/``timeout`` with `after_chunks`: let the real answer start, then break it.

        A streamed answer reaches the client up to its `after_chunks`-th body chunk, then the
        connection is cut (``drop``) or stalls for the fault's delay before being cut
        (``timeout``). An answer in one piece cannot break mid-stream; it gets the plain fault.
        """
        assert fault.after_chunks is not None
        limit = fault.after_chunks
        sent = 0
        started: Message | None = None
        whole: list[bytes] = []

        async def forward(message: Message) -> None:
            nonlocal sent, started
            if message["type"] == "http.response.start":
                started = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            more = message.get("more_body", False)
            if started is not None:
                if not more:  # the whole answer in one chunk: not a stream
                    whole.append(message.get("body", b""))
                    raise _NotStreamed
                await send(started)
                started = None
            await send(message)
            if message.get("body"):
                sent += 1
            if sent >= limit and more:
                if fault.kind == "timeout":
                    delay = fault.delay if fault.delay is not None else DEFAULT_TIMEOUT_DELAY
                    await anyio.sleep(delay)
                raise ConnectionDropped(
                    f"stream cut after {sent} chunk(s) (injected {fault.kind} fault)"
                )

        try:
            await self.app(scope, receive, forward)
        except _NotStreamed:
            # Answered (and billed) in one piece: its status line and half its body go out, then
            # the connection stalls (``timeout``: the client's read timeout fires) or is cut.
            assert started is not None
            if fault.kind == "timeout":
                delay = fault.delay if fault.delay is not None else DEFAULT_TIMEOUT_DELAY
                await _drop(send, started, b"".join(whole), stall=lambda: _sleep_unless_disconnected(delay, receive))
            await _drop(send, started, b"".join(whole))

    async def render_truncate(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        start, body = await _answer_of(self.app, scope, receive)
        if start is None:
            raise RuntimeError("the handler returned without starting a response")
        half = body[: len(body) // 2]
        # A consistent Content-Length makes this a complete HTTP message with a broken payload,
        # unlike `drop`, which breaks the transport.
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(half)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": half})

    async def render_malformed(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """The real handler answers (and bills: the vendor made its answer), then its body is
        replaced by valid JSON of a shape the client does not expect, under the same status."""
        start, _ = await _answer_of(self.app, scope, receive)
        body = fault.body if fault.body is not None else MALFORMED_BODY
        kept = [(k, v) for k, v in (start or {}).get("headers", [])
                if k.lower() not in (b"content-length", b"content-type", b"transfer-encoding")]
        await send({"type": "http.response.start", "status": start["status"] if start is not None else 200,
                    "headers": [*kept, (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def render_html(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = fault.status or 502
        body = fault.body if fault.body is not None else _nginx_page(status).encode()
        response = HTMLResponse(body, status_code=status, headers={"server": "nginx"})
        await response(scope, receive, send)


async def _answer_of(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message | None, bytes]:
    """Run the real handler to the end: its response start and its whole body."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return start, b"".join(chunks)


async def _drop(send: Send, start: Message, body: bytes,
                stall: Callable[[], Awaitable[object]] | None = None) -> None:
    """Send ``start`` (its status and headers, with a length promising more than comes), then
    the first half of ``body`` (or a JSON prefix), then (after ``stall``) cut the connection."""
    prefix = body[: len(body) // 2] or _DROP_PREFIX
    promised = max(len(body), len(prefix) + 1, _DROP_PROMISED_LENGTH if not body else 0)
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length",
                                                                                b"transfer-encoding")]
    headers.append((b"content-length", str(promised).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": prefix, "more_body": True})
    if stall is not None:
        await stall()
    raise ConnectionDropped("connection dropped mid-response (injected fault)")


class _NotStreamed(Exception):
    """The handler answered in one piece, so a mid-stream fault falls back to the plain one."""


async def _sleep_unless_disconnected(delay: float, receive: Receive) -> bool:
    """Sleep `delay` seconds; return True early if the client disconnects meanwhile.

    Watching for the disconnect keeps a stalled request from outliving its client, so a
    server can stop promptly after a test whose client timed out.
    """
    disconnected = False

    async def watch() -> None:
        nonlocal disconnected
        while (await receive())["type"] != "http.disconnect":
            pass
        disconnected = True
        group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        await anyio.sleep(delay)
        group.cancel_scope.cancel()
    return disconnected


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _nginx_page(status: int) -> str:
    # What a reverse proxy in front of a real API sends when the upstream is down.
    title = f"{status} {_phrase(status)}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )

