"""aiohttp under httpx's interface: the connection layer of every provider's HTTP client.

Providers, google-genai and tests all speak ``httpx.AsyncClient``; only the transport
underneath changes. Why aiohttp: with hundreds of calls in flight, httpcore's connection
pool walks its whole connection list for every request and every response it hands back,
so its CPU per call grows with the pool; aiohttp keeps idle connections per host in a queue
and parses HTTP in C. ``benchmarks/concurrency.py`` and ``benchmarks/gemini_overhead.py``
hold the measurements (google-genai itself picks aiohttp whenever it is installed, for the
same reason). Without aiohttp importable, ``guarded_transport`` falls back to httpcore.

The download guard holds here too: a download's host name is looked up once by
``_GuardedResolver``, refused if any answer is private, and the connector dials exactly
those addresses (its DNS cache is off, so every new connection asks the resolver; TLS and
the Host header still use the name). Connections outside a download pass to aiohttp's own
resolver: a provider's API may rightly sit at a private address.

aiohttp's exceptions are mapped to httpx's at one place (``_mapped``), as httpx maps
httpcore's; anything unmapped propagates unchanged.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from ._answers import note_answer
from ._http import _DOWNLOAD_POLICY, _is_private_ip, _RefusedAddress, _resolve

__all__ = ["AiohttpTransport"]

_httpx_log = logging.getLogger("httpx")

#: Most specific first: the first match wins.
_EXCEPTIONS: list[tuple[type[BaseException], type[httpx.TransportError]]] = [
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.ReadError),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (TimeoutError, httpx.ReadTimeout),
]


def _mapped(exc: BaseException, request: httpx.Request) -> BaseException:
    for source, target in _EXCEPTIONS:
        if isinstance(exc, source):
            return target(str(exc) or type(exc).__name__, request=request)
    return exc


@functools.lru_cache(maxsize=64)
def _timeouts(pool: float | None, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    """httpx's per-phase timeouts as aiohttp's (immutable, so one per set of values)."""
    return aiohttp.ClientTimeout(total=None, connect=pool, sock_connect=connect, sock_read=read)


def _extensions(response: aiohttp.ClientResponse) -> dict[str, Any]:
    extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
    if response.reason:
        extensions["reason_phrase"] = response.reason.encode()
    return extensions


class _GuardedResolver(AbstractResolver):
    """Looks a download's host up once and hands the connector only addresses that passed."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        policy = _DOWNLOAD_POLICY.get()
        if policy is None or host.lower() in policy.allow_hosts:
            return await self._inner.resolve(host, port, family)
        try:
            addresses = await _resolve(host)
        except UnicodeError as exc:
            raise OSError(f"cannot look up {host}: {exc}") from exc
        if not addresses:
            raise OSError(f"{host} has no address")
        if any(map(_is_private_ip, addresses)):
            raise _RefusedAddress(host)
        return [{"hostname": host, "host": str(ip), "port": port,
                 "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV} for ip in addresses]

    async def close(self) -> None:
        await self._inner.close()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response, self._request = response, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            raise _mapped(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()  # back to the pool when read to the end, else closed


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one ``aiohttp.ClientSession``, opened on first use in the running loop.

    The session only moves bytes: no cookie jar (httpx keeps cookies), no environment proxies
    (httpx mounts those), no redirects and no decompression (httpx does both), no overall
    timeout (httpx's per-phase timeouts are passed with every request).
    """

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        self._limits, self._ssl = limits, ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0, limit_per_host=0, ssl=self._ssl,
            keepalive_timeout=self._limits.keepalive_expiry or 5.0,
            use_dns_cache=False, resolver=_GuardedResolver())
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._send(request, await request.aread())
        return httpx.Response(status_code=response.status, headers=response.raw_headers,
                              stream=_ResponseStream(response, request), request=request,
                              extensions=_extensions(response))

    async def exchange(self, request: httpx.Request, body: bytes) -> httpx.Response:
        """Send ``request`` (its ``body`` given whole) and read the answer whole, doing what the
        client's layers would do on the way (``imagegen._prepared`` decides when there is nothing
        else for them to do): the billed-answer watch (``imagegen._answers``) and httpx's log line."""
        started = time.perf_counter()
        response = await self._send(request, body)
        headers = httpx.Headers(response.raw_headers)
        answer = note_answer(request, response.status, headers)
        try:
            content = await response.read()
        except (Exception, asyncio.CancelledError) as exc:
            if answer is not None:
                answer.body = "cut"
            response.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _mapped(exc, request) from exc
        if answer is not None:
            answer.body = "whole"
        response.release()
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info('HTTP Request: %s %s "HTTP/1.1 %d %s"', request.method, request.url, response.status,
                            response.reason or "")
        answered = httpx.Response(status_code=response.status, headers=headers, stream=httpx.ByteStream(content),
                                  request=request, extensions=_extensions(response))
        if "content-encoding" in headers:
            answered.read()  # httpx's decoders (gzip, ...), as the client would have read it
        else:  # what ``read()`` would keep, without its pass through the chunker and decoders
            answered._content = content
        answered._elapsed = datetime.timedelta(seconds=time.perf_counter() - started)  # as httpx times it
        return answered

    async def _send(self, request: httpx.Request, body: bytes) -> aiohttp.ClientResponse:
        session = self._session or self._open()
        # From the raw pairs: httpx's decoded views re-derive the headers' encoding on every access.
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() != b"transfer-encoding"]
        timeout: dict[str, Any] = request.extensions.get("timeout", {})
        try:
            response = await session.request(
                request.method, str(request.url), headers=headers, data=body or None, allow_redirects=False,
                compress=None, server_hostname=request.extensions.get("sni_hostname"),
                timeout=_timeouts(timeout.get("pool"), timeout.get("connect"), timeout.get("read")))
        except Exception as exc:
            raise _mapped(exc, request) from exc
        return response

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
