"""``PreparedPost`` (``imagegen._prepared``): a provider's per-call POST, merged once and sent
straight to the aiohttp transport where httpx's client layers would add nothing.

The direct send must put the same bytes on the wire as ``http.request``, keep the billed-answer
watch (a 2xx whose body is cut is a paid call: ``imagegen._answers``), map the transport's
errors as the transport does, and step aside for anything the client's layers would act on.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import httpx
import pytest

from imagegen import __version__
from imagegen._aiohttp import AiohttpTransport
from imagegen._answers import AnswerWatch, watch_answer
from imagegen._http import CallScope, call_scope, guarded_transport, keep_cookies_cheaply
from imagegen.provider import PreparedPost

BODY = b'{"candidates": [{"content": {"parts": [{"text": "hello"}]}}]}'


class RawServer:
    """A loopback HTTP/1.1 server that keeps every request's bytes and answers 200 with ``BODY``
    (or, ``cut``, a 200 whose body stops after a few bytes)."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.cut = False
        self.gzip = False
        self.cookie = False
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                status = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-request-id: r-1\r\n"
                if self.cookie:
                    status += b"Set-Cookie: session=s-2; Path=/\r\n"
                if self.gzip:
                    packed = gzip.compress(BODY)
                    writer.write(status + b"Content-Encoding: gzip\r\n"
                                 + b"Content-Length: %d\r\n\r\n" % len(packed) + packed)
                    await writer.drain()
                    continue
                if self.cut:
                    writer.write(status + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
                    await writer.drain()
                    break
                writer.write(status + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    async with RawServer() as raw:
        yield raw


async def warmed(http: httpx.AsyncClient, server: RawServer) -> httpx.AsyncClient:
    """The client once its transport is built (by its first request, which goes through the
    client's layers), and the server's record of that request forgotten."""
    await http.get(f"http://127.0.0.1:{server.port}/warm")
    server.requests.clear()
    return http


def provider_client(**options: object) -> httpx.AsyncClient:
    """A provider's client as ``AsyncClient.provider`` makes it."""
    limits = httpx.Limits(max_connections=10, max_keepalive_connections=10)
    settings: dict[str, object] = {"event_hooks": {"response": [watch_answer]}, **options}
    return keep_cookies_cheaply(httpx.AsyncClient(
        timeout=30.0, limits=limits, transport=guarded_transport(limits, backend="aiohttp"),
        headers={"User-Agent": f"imagegen/{__version__}"}, **settings))  # type: ignore[arg-type]


@pytest.fixture
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    seen: list[httpx.Request] = []
    real = AiohttpTransport.exchange

    async def spy(self: AiohttpTransport, request: httpx.Request, body: bytes) -> httpx.Response:
        seen.append(request)
        return await real(self, request, body)

    monkeypatch.setattr(AiohttpTransport, "exchange", spy)
    return seen


HEADERS = {"Content-Type": "application/json", "x-goog-api-key": "k-1", "x-goog-api-client": "sdk/1.0"}


async def test_the_direct_send_puts_the_same_bytes_on_the_wire_as_http_request(server, exchanges):
    http = await warmed(provider_client(), server)
    url = f"http://127.0.0.1:{server.port}/v1beta/models/m:generateContent"
    post = PreparedPost(http, url, headers=HEADERS, timeout=90.0)
    direct = await post.send(b'{"contents": []}')
    assert len(exchanges) == 1  # the direct path was taken
    full = await http.request("POST", url, headers=HEADERS, timeout=90.0, content=b'{"contents": []}')
    assert len(exchanges) == 1
    assert server.requests[0] == server.requests[1]
    assert (direct.status_code, direct.content, direct.headers.get("x-request-id")) == \
        (full.status_code, full.content, full.headers.get("x-request-id"))
    assert direct.request.url == full.request.url
    assert direct.elapsed.total_seconds() > 0
    await http.aclose()


async def test_a_billed_answer_is_watched_whole_or_cut_on_the_direct_path(server, exchanges):
    http = await warmed(provider_client(), server)
    post = PreparedPost(http, f"http://127.0.0.1:{server.port}/gen", headers=HEADERS, timeout=5.0)
    watch = AnswerWatch()
    with call_scope(CallScope(answers=watch)):
        await post.send(b"{}")
        server.cut = True
        with pytest.raises(httpx.RemoteProtocolError):  # aiohttp's payload error, mapped as the transport maps it
            await post.send(b"{}")
    assert len(exchanges) == 2
    assert [(a.method, a.status, a.body, a.headers.get("x-request-id")) for a in watch.answers] == \
        [("POST", 200, "whole", "r-1"), ("POST", 200, "cut", "r-1")]
    assert watch.answers[1].url == f"http://127.0.0.1:{server.port}/gen"
    await http.aclose()


async def test_a_compressed_answer_is_decoded_on_the_direct_path_as_httpx_decodes_it(server, exchanges):
    server.gzip = True  # Google compresses answers when asked to, and httpx asks
    http = await warmed(provider_client(), server)
    post = PreparedPost(http, f"http://127.0.0.1:{server.port}/gen", headers=HEADERS, timeout=5.0)
    answer = await post.send(b"{}")
    assert len(exchanges) == 1 and answer.content == BODY and answer.json()["candidates"]
    await http.aclose()


async def test_a_cookie_set_on_the_direct_path_is_kept_and_sent_as_the_client_would(server, exchanges):
    http = await warmed(provider_client(), server)
    server.cookie = True
    post = PreparedPost(http, f"http://127.0.0.1:{server.port}/gen", headers=HEADERS, timeout=5.0)
    await post.send(b"{}")
    await post.send(b"{}")  # the client has a cookie now: its layers send it
    assert len(exchanges) == 1 and http.cookies.get("session") == "s-2"
    assert b"session=s-2" not in server.requests[0] and b"session=s-2" in server.requests[1]
    await http.aclose()


@pytest.mark.parametrize("why", ["cookies", "redirects", "hook", "transport"])
async def test_the_client_layers_run_when_they_would_act(server, exchanges, why):
    hooked: list[int] = []

    async def hook(response: httpx.Response) -> None:
        hooked.append(response.status_code)

    options: dict[str, object] = {
        "redirects": {"follow_redirects": True},
        "hook": {"event_hooks": {"response": [watch_answer, hook]}},
    }.get(why, {})
    if why == "transport":
        http = await warmed(httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(),
                                              event_hooks={"response": [watch_answer]}), server)
    else:
        http = await warmed(provider_client(**options), server)
    if why == "cookies":
        http.cookies.set("session", "s-1", domain="127.0.0.1")
    hooked.clear()
    post = PreparedPost(http, f"http://127.0.0.1:{server.port}/gen", headers=HEADERS, timeout=5.0)
    answer = await post.send(b"{}")
    assert answer.content == BODY and exchanges == []
    assert hooked == ([200] if why == "hook" else [])
    if why == "cookies":
        assert b"session=s-1" in server.requests[0]
    await http.aclose()
