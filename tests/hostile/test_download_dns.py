"""Output downloads against hostile DNS: the address that is checked is the address connected to.

Nothing here asks real DNS or sends a packet off the machine. ``socket.getaddrinfo`` (what
asyncio's resolver runs in a worker thread) is replaced by ``HostileDNS``, which answers one
made-up name from a script, and the event loop's ``sock_connect`` (where both transports,
aiohttp's and httpcore's, dial) by a stand-in that records every target and sends the made-up
public address to a local listener. The downloads use a provider's client from
``imagegen.AsyncClient`` on each transport ``guarded_transport`` can build: the production path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from imagegen import AsyncClient, ImageGenError, InvalidResponseError, ProviderUnavailableError
from imagegen._http import fetch_image, guarded_transport
from imagegen.provider import Provider
from imagegen.testing import serve

PUBLIC = "93.184.216.34"  # a global address; `dialled` sends it to a local listener instead
LOOPBACK = "127.0.0.1"
REAL_GETADDRINFO = socket.getaddrinfo
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class Ticker:
    """Counts turns of the event loop's clock: it cannot count while the loop is blocked."""

    def __init__(self) -> None:
        self.count = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.01)
            self.count += 1


class HostileDNS:
    """Answers ``name`` with ``answers`` in turn (the last one from then on); other names really."""

    def __init__(self, name: str, *answers: str, delay: float = 0.0, ticker: Ticker | None = None) -> None:
        self.name, self.answers, self.delay, self.ticker = name, answers, delay, ticker
        self.given: list[str] = []
        self.ticks_during: list[int] = []  # ticker counts while each slow lookup ran

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if (host.decode() if isinstance(host, bytes) else host) != self.name:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        before = self.ticker.count if self.ticker else 0
        time.sleep(self.delay)  # a slow resolver blocks whichever thread asked
        if self.ticker:
            self.ticks_during.append(self.ticker.count - before)
        address = self.answers[min(len(self.given), len(self.answers) - 1)]
        self.given.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]


class Listener:
    """A local TCP listener that counts connections and keeps the first bytes each one sends."""

    def __init__(self) -> None:
        self.connections = 0
        self.received: list[bytes] = []

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.received.append(await asyncio.wait_for(reader.read(4096), 2))
        finally:
            writer.close()


@pytest.fixture(params=["aiohttp", "httpcore"])
async def provider(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    for var in PROXY_VARS:  # an env proxy would make the connections instead of the provider's client
        monkeypatch.delenv(var, raising=False)
    config = {"providers": {"nanobanana2": {"api_key": "test-key"}},
              "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
    transport = guarded_transport(httpx.Limits(max_connections=10), backend=request.param)
    async with AsyncClient(config, transports={"nanobanana2": transport}) as client:
        yield client.provider("nanobanana2")


@pytest.fixture
async def internal() -> AsyncIterator[Listener]:
    """Stands for what a rebinding attacker is after: a service on the machine's loopback."""
    async with Listener() as listener:
        yield listener


@pytest.fixture
async def public() -> AsyncIterator[Listener]:
    """Stands for the public server at ``PUBLIC``."""
    async with Listener() as listener:
        yield listener


@pytest.fixture
async def dialled(monkeypatch: pytest.MonkeyPatch, public: Listener) -> list[str]:
    """Every address the client dials, in order; ``PUBLIC`` goes to the ``public`` listener."""
    targets: list[str] = []
    loop = asyncio.get_running_loop()
    real_connect = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        targets.append(str(address[0]))
        if str(address[0]) == PUBLIC:
            address = (LOOPBACK, public.port)
        await real_connect(sock, address)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    return targets


async def _download(provider: Provider, url: str) -> None:
    policy = dataclasses.replace(provider.download_policy(), timeout_s=5.0)
    await fetch_image(provider.http, url, provider=provider.instance_name, policy=policy)


async def test_a_name_that_turns_private_after_the_check_is_refused_before_any_connection(
        provider, internal, dialled, monkeypatch):
    dns = HostileDNS("rebind.test", PUBLIC, LOOPBACK)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    with pytest.raises(ImageGenError) as info:
        await _download(provider, f"https://rebind.test:{internal.port}/x.png")
    assert internal.connections == 0
    assert dialled == []
    assert isinstance(info.value, InvalidResponseError)
    assert "private or loopback address (rebind.test)" in info.value.message


async def test_the_connection_goes_to_the_checked_address_and_tls_still_names_the_host(
        provider, internal, public, dialled, monkeypatch):
    # Two public answers, then loopback: a guard that checked one lookup and let the
    # connect look the name up again would land on the internal service.
    dns = HostileDNS("rebind.test", PUBLIC, PUBLIC, LOOPBACK)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    with pytest.raises(ProviderUnavailableError):  # the stand-in public server speaks no TLS
        await _download(provider, f"https://rebind.test:{internal.port}/x.png")
    assert dialled == [PUBLIC]
    assert internal.connections == 0
    assert public.connections == 1
    assert b"rebind.test" in public.received[0]  # the TLS ClientHello's SNI: certificates are checked for the name


async def test_a_slow_lookup_does_not_stall_the_event_loop(provider, internal, dialled, monkeypatch):
    ticker = Ticker()
    dns = HostileDNS("slow.test", PUBLIC, LOOPBACK, delay=0.3, ticker=ticker)
    monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
    ticking = asyncio.create_task(ticker.run())
    try:
        with pytest.raises(ImageGenError) as info:  # the check's lookup passes; the connection's refuses
            await _download(provider, f"https://slow.test:{internal.port}/x.png")
    finally:
        ticking.cancel()
    assert len(dns.ticks_during) == 2, dns.given
    # About 30 ticks fit in each 0.3 s lookup; a lookup run on the loop's own thread allows none.
    assert min(dns.ticks_during) >= 3, dns.ticks_during
    assert isinstance(info.value, InvalidResponseError) and "private" in info.value.message
    assert internal.connections == 0


async def test_the_providers_own_api_calls_may_still_reach_a_private_address(provider, monkeypatch):
    # A provider's API behind a VPC endpoint or an internal gateway resolves privately; only
    # downloads of URLs the provider returned are held to the public internet.
    app = Starlette(routes=[Route("/v1/ping", lambda request: Response(b"pong"))])
    with serve(app) as server:
        dns = HostileDNS("api.internal.test", LOOPBACK)
        monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
        response = await provider.http.get(f"http://api.internal.test:{server.port}/v1/ping")
    assert response.content == b"pong"
