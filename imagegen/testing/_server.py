"""Running emulators: on a loopback port in a thread, in the foreground, or in-process."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from types import TracebackType

import anyio.to_thread
import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._emulator import Emulator
from ._middleware import ConnectionDropped

__all__ = ["LoopbackServer", "asgi_transport", "run_forever", "serve"]

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0


class LoopbackServer:
    """An emulator (or any ASGI app) served by uvicorn from a background thread.

    Use it as a context manager, sync or async; `start` and `stop` are there for fixtures.
    Each server binds its own free port, so any number can run in one process.
    """

    def __init__(
        self, target: Emulator | ASGIApp, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        #: The emulator being served, or ``None`` when a plain ASGI app was given.
        self.emulator = target if isinstance(target, Emulator) else None
        self.app: ASGIApp = target.app if isinstance(target, Emulator) else target
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._server: _ThreadedServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the server is not started; use it in a `with` block")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``, without a trailing slash."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LoopbackServer:
        """Bind, start uvicorn in a daemon thread, and return once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        _silence_dropped_connection_logs()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets
        # whose proto says TCP, and without it every response waits ~40 ms for delayed ACKs.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._requested_port))
            # Listening before uvicorn starts means no client can be refused in between.
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            # None: leave the host application's logging configuration alone.
            log_config=None,
            access_log=False,
            # Vendors do not announce uvicorn; emulators add their own Server header if any.
            server_header=False,
            # A request still running at stop() is cancelled after this, so teardown is quick.
            timeout_graceful_shutdown=1,
        )
        self._server = server = _ThreadedServer(config)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"imagegen-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_ready(sock)
        return self

    def stop(self) -> None:
        """Stop uvicorn and wait for its thread; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.request_exit()
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LoopbackServer:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"<LoopbackServer {where} app={self.emulator or self.app!r}>"

    def _wait_until_ready(self, sock: socket.socket) -> None:
        assert self._server is not None and self._thread is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.ready.wait(0.005):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"the emulator server on port {self._port} failed to start")


class _ThreadedServer(uvicorn.Server):
    """A uvicorn server that says when it is ready and stops without waiting a tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await super().startup(sockets=sockets)
        if self.started:
            self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn polls should_exit every 0.1 s; waking on an event makes stop() take
        # milliseconds, which adds up when a test suite starts a server per test.
        assert self._wake is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's own shutdown, but polling every 5 ms where uvicorn sleeps 0.1 s (once even
        # with no connection open, then per check): a suite stops hundreds of these servers.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 0)  # 1 s, set in start()
        state = self.server_state
        # uvicorn signals no event when its connections and tasks are gone: poll, as it does.
        while (state.connections or state.tasks) and not self.force_exit and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        for task in state.tasks:
            task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def request_exit(self) -> None:
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


def serve(target: Emulator | ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> LoopbackServer:
    """Serve an emulator (or ASGI app) over real HTTP for the length of a ``with`` block.

    ``port=0`` picks a free port. Example::

        with serve(MyEmulator()) as server:
            httpx.post(server.base_url + "/generate", json={...})
    """
    return LoopbackServer(target, host=host, port=port)


def run_forever(
    target: Emulator | ASGIApp, *, host: str = "127.0.0.1", port: int, log_level: str = "info"
) -> None:
    """Serve in the foreground until interrupted (Ctrl-C); used by ``imagegen emulate``.

    The access log shows each request's path with secret query values (``?key=``) redacted.
    """
    _silence_dropped_connection_logs()
    _redact_access_log()
    app = target.app if isinstance(target, Emulator) else target
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)


def asgi_transport(target: Emulator | ASGIApp) -> httpx.ASGITransport:
    """An httpx transport that calls the emulator in-process, without a socket.

    Use it as ``httpx.AsyncClient(transport=asgi_transport(emu), base_url="http://emu")``.
    Faults behave as over HTTP: a ``drop`` after the status line reaches the client as its
    status and headers, then a body that breaks with ``httpx.RemoteProtocolError`` (the
    answer was made, and billed, before the cut). One difference: ``timeout`` stalls for its
    full delay, since in-process calls have no read timeout. Other exceptions from handlers
    propagate to the caller.
    """
    app = target.app if isinstance(target, Emulator) else target
    return _InProcessTransport(app)


#: The cut (if any) of the request ``_InProcessTransport`` is serving in this task.
_CUT: contextvars.ContextVar[list[ConnectionDropped] | None] = contextvars.ContextVar("emulator_cut", default=None)


class _InProcessTransport(httpx.ASGITransport):
    """httpx's in-process transport, which buffers whole answers, but a connection the emulator
    cuts after its status line is seen by the client as over HTTP: status first, body broken."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app=self._noting_cuts(app))

    @staticmethod
    def _noting_cuts(app: ASGIApp) -> ASGIApp:
        async def noting(scope: Scope, receive: Receive, send: Send) -> None:
            started = False

            async def watched(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await app(scope, receive, watched)
            except ConnectionDropped as cut:
                cuts = _CUT.get()
                if not started or cuts is None:
                    raise
                cuts.append(cut)
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        return noting

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cuts: list[ConnectionDropped] = []
        token = _CUT.set(cuts)
        try:
            response = await super().handle_async_request(request)
        finally:
            _CUT.reset(token)
        if cuts:
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _BrokenBody(response.stream, cuts[0])
        return response


class _BrokenBody(httpx.AsyncByteStream):
    """The part of a body sent before the cut, then the cut."""

    def __init__(self, sent: httpx.AsyncByteStream, cut: ConnectionDropped) -> None:
        self._sent, self._cut = sent, cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._sent:
            yield chunk
        raise self._cut


class _DroppedConnectionFilter(logging.Filter):
    """Hides uvicorn's traceback for the deliberate failure behind the ``drop`` fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_FILTER = _DroppedConnectionFilter()


def _silence_dropped_connection_logs() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


# Query parameters that carry credentials: Gemini's ``?key=``, and the usual others.
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:key|api_key|apikey|api-key|access_token|token|auth|signature|sig|x-goog-api-key)=)[^&#\s]*")


def redact_url(text: str) -> str:
    """``text`` with the values of credential-bearing query parameters replaced by ``REDACTED``."""
    return _SECRET_QUERY.sub(r"\1REDACTED", text)


class _RedactingAccessFilter(logging.Filter):
    """Rewrites uvicorn's access-log arguments so a ``?key=...`` never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact_url(record.msg)
        return True


_ACCESS_FILTER = _RedactingAccessFilter()


def _redact_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if _ACCESS_FILTER not in logger.filters:
        logger.addFilter(_ACCESS_FILTER)
