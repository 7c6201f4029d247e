"""HTTP facts every provider needs: wait hints, tolerant JSON, safe image downloads.

Nothing here knows a vendor. Providers call these from their one error-translation
point and their output download code; ``imagegen.AsyncClient`` builds each provider's
client on ``guarded_transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import importlib.util
import ipaddress
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import httpx

from ._errors import (
    InvalidResponseError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
)
from ._models import Image

__all__ = ["CallScope", "DownloadPolicy", "call_scope", "current_scope", "fetch_image", "guarded_transport",
           "keep_cookies_cheaply", "parse_wait_hint", "read_json", "retry_after_from_headers", "shared_ssl_context"]


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """The TLS settings every HTTP client of this process uses (httpx's defaults: certifi's CA
    bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``). Made once: loading the CA bundle takes
    about 40 ms, and each provider would otherwise load it two or three times (its own client,
    and google-genai's)."""
    return httpx.create_ssl_context()

_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# Beyond this, a "wait" value is taken to be a Unix time, not a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000


def parse_wait_hint(value: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from a hint that may be seconds, a Unix time, "34s", or an HTTP date."""
    if value is None or isinstance(value, bool):
        return None
    now = time.time() if now is None else now
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*s?", text)
        if match:
            number = float(match.group(1))
        else:
            try:
                return max(0.0, parsedate_to_datetime(text).timestamp() - now)
            except (TypeError, ValueError, IndexError):
                return None
    if number > _EPOCH_THRESHOLD:
        number = number / 1000 if number > _EPOCH_THRESHOLD * 1000 else number
        return max(0.0, number - now)
    return max(0.0, number)


def retry_after_from_headers(headers: httpx.Headers) -> float | None:
    """The server's wait hint: ``Retry-After`` first, then a future ``X-RateLimit-Reset``
    (a reset already past says nothing about when to come back)."""
    hint = parse_wait_hint(headers.get("retry-after"))
    if hint is None:
        hint = parse_wait_hint(headers.get("x-ratelimit-reset")) or None
    return hint


def _html_title(body: bytes) -> str | None:
    match = _TITLE.search(body[:4096])
    return match.group(1).decode(errors="replace").strip() if match else None


def describe_body(response: httpx.Response) -> str:
    """A short, safe description of a body for error messages."""
    body = response.content
    if b"<html" in body[:512].lower() or "html" in response.headers.get("content-type", ""):
        title = _html_title(body)
        return f"an HTML page{f' ({title!r})' if title else ''} instead of JSON"
    snippet = body[:200].decode(errors="replace")
    return f"{len(body)} bytes that are not the expected JSON: {snippet!r}"


def read_json(response: httpx.Response, *, provider: str) -> Any:
    """Parse a JSON body, or raise ``InvalidResponseError`` saying what came instead."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise InvalidResponseError(
            f"{provider} answered HTTP {response.status_code} with {describe_body(response)}",
            provider=provider,
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from None


@dataclass(frozen=True)
class DownloadPolicy:
    """Rules for fetching provider output URLs.

    Only https is fetched, except from ``allow_hosts`` (a provider's configured
    ``base_url`` host, an emulator); loopback, private and link-local addresses
    are refused unless their host is allowed.
    """

    max_bytes: int = 64 * 1024 * 1024
    max_redirects: int = 5
    timeout_s: float = 60.0
    allow_hosts: frozenset[str] = field(default_factory=frozenset)


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_private_ip(ip: _IPAddress) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
    ip = mapped if mapped is not None else ip
    # Not global covers private, loopback, link-local (cloud metadata), CGNAT, reserved and
    # unspecified ranges alike; multicast counts as global but is no image host either.
    return not ip.is_global or ip.is_multicast


async def _resolve(host: str) -> list[_IPAddress]:
    """``host``'s addresses in the resolver's order, looked up in a worker thread (getaddrinfo blocks)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))


async def _is_private_host(host: str) -> bool:
    """Whether ``host`` is, or resolves to, an address that is not on the public internet."""
    try:  # an IP literal is judged as written, without asking DNS
        return _is_private_ip(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return any(map(_is_private_ip, await _resolve(host)))
    except (OSError, UnicodeError):
        return False  # unresolvable: the fetch itself fails with a clear error


def _private_refusal(provider: str, host: str) -> InvalidResponseError:
    return InvalidResponseError(
        f"{provider} returned an output URL on a private or loopback address ({host}); refused. "
        "Configure the provider's base_url on that host to allow it.",
        provider=provider,
    )


async def _check_url(url: str, policy: DownloadPolicy, provider: str, timeout: float) -> None:
    """Every hop of a download, redirects included, passes these rules on its own.

    http(s) only; plain http only to an allowed host (the provider's configured base_url);
    private, loopback and link-local addresses only when their host is allowed. A redirect
    from an allowed host to any other private address is refused like any other URL.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidResponseError(
            f"{provider} returned an output URL that is not http(s) ({parts.scheme or 'no scheme'}://...); refused",
            provider=provider,
        )
    if host in policy.allow_hosts:
        return
    if parts.scheme != "https":
        raise InvalidResponseError(
            f"{provider} returned an output URL that is not https (http://{host}/...); refused. "
            "Only the provider's configured base_url host may serve plain http.",
            provider=provider,
        )
    try:
        private = await asyncio.wait_for(_is_private_host(host), timeout)
    except TimeoutError:
        raise ProviderTimeoutError(f"looking up {host} for {provider} output timed out", provider=provider) from None
    if private:
        raise _private_refusal(provider, host)


#: The policy of the download the current task is making; ``_AddressGuard`` reads it at connect time.
_DOWNLOAD_POLICY: contextvars.ContextVar[DownloadPolicy | None] = contextvars.ContextVar(
    "imagegen_download_policy", default=None)


class _RefusedAddress(Exception):
    """A download's host resolved to a private address when its connection was made."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


if TYPE_CHECKING:  # pragma: no cover
    import httpcore

    from ._answers import AnswerWatch

    _NetworkBackend = httpcore.AsyncNetworkBackend
else:
    # httpcore takes any object with the backend's methods; deriving from its class at import
    # time would import httpcore (and trio, when installed) with ``imagegen`` itself.
    _NetworkBackend = object


class _AddressGuard(_NetworkBackend):
    """Dials a download at the addresses it has just checked, never at the name.

    ``_check_url`` judges a name before the request, but the real backend would look the
    name up again to connect, and a hostile DNS server can answer the first lookup with a
    public address and the second with 127.0.0.1 (DNS rebinding). So for a download the
    guard looks the name up once, refuses if any answer is private, and connects to those
    very addresses. TLS is untouched: httpcore gives ``start_tls`` the URL's host name, so
    SNI and the certificate check use the name, and so does the Host header.

    Only connections made inside ``fetch_image`` are judged. The provider's own API calls
    share the pool, and may rightly go to a private address (a VPC endpoint, an internal
    gateway), so they pass straight to the real backend.
    """

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        import httpcore

        policy = _DOWNLOAD_POLICY.get()
        if policy is None or host.lower() in policy.allow_hosts:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        error = httpcore.ConnectError(f"{host} has no address")
        for address in await self._public_addresses(host, timeout):
            try:
                return await self._inner.connect_tcp(str(address), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next address, as a connect by name would
                error = exc
        raise error

    async def _public_addresses(self, host: str, timeout: float | None) -> list[_IPAddress]:
        import httpcore

        try:
            addresses = await asyncio.wait_for(_resolve(host), timeout)
        except TimeoutError:  # a subclass of OSError: first
            raise httpcore.ConnectTimeout(f"looking up {host} timed out") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot look up {host}: {exc}") from exc
        if any(map(_is_private_ip, addresses)):
            raise _RefusedAddress(host)
        return addresses

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which looks at an answer only when it sets a cookie: httpx builds
    urllib stand-ins of the request and the response for every answer to find its cookies
    (~20 us a call, more than a quarter of httpx's own work), and API answers rarely set any."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def keep_cookies_cheaply(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Give ``client`` (a new one, without cookies yet) the jar above; cookies work as before."""
    client._cookies = _Cookies(client.cookies)  # httpx's setter would wrap it in its own class
    return client


def guarded_transport(limits: httpx.Limits, *, backend: str | None = None) -> httpx.AsyncBaseTransport:
    """The transport a provider's client runs on; a download's connections go only to the
    addresses its check approved.

    ``backend``: ``"aiohttp"`` (the default when it is installed; see ``imagegen._aiohttp``
    for why) or ``"httpcore"`` (httpx's own, with ``_AddressGuard`` as its network backend).
    Downloads keep the provider's one pooled client (and any transport a test or proxy
    injects in its place; through a proxy, the proxy's lookup is the one that counts).

    It is built when the first request needs it: a provider made for an estimate, a price
    table or a job listing loads neither aiohttp (~60-95 ms of CPU) nor the CA bundle of the
    TLS context (~40 ms); the first request pays them instead (benchmarks/import_time.py).
    """
    return _BuiltOnFirstRequest(functools.partial(_build_transport, limits, backend))


class _BuiltOnFirstRequest(httpx.AsyncBaseTransport):
    """A transport made by ``build`` when the first request needs it (see ``guarded_transport``)."""

    def __init__(self, build: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._build = build
        self._transport: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = self._build()
            # Later requests go straight to it: no extra call per request.
            self.handle_async_request = self._transport.handle_async_request  # type: ignore[method-assign]
        return await self._transport.handle_async_request(request)

    @property
    def built(self) -> httpx.AsyncBaseTransport | None:
        """The transport, once the first request has made it."""
        return self._transport

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


def _build_transport(limits: httpx.Limits, backend: str | None) -> httpx.AsyncBaseTransport:
    if backend is None:
        backend = "aiohttp" if importlib.util.find_spec("aiohttp") is not None else "httpcore"
    if backend == "aiohttp":
        from ._aiohttp import AiohttpTransport  # imports aiohttp: only once a provider is made

        return AiohttpTransport(limits=limits, ssl_context=shared_ssl_context())
    import httpcore

    transport = httpx.AsyncHTTPTransport(verify=shared_ssl_context(), limits=limits)
    # httpx takes no network backend, so swap in the pool it builds (same TLS context and
    # limits), made on the guard.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=shared_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_AddressGuard(httpcore.AnyIOBackend()),
    )
    return transport


@dataclass(frozen=True)
class CallScope:
    """What the call a provider is serving asks of output downloads, set by the client's pipeline.

    ``deadline`` (a ``time.monotonic()`` value) bounds every download in total, redirects and
    slow bodies included. ``on_outputs(job_id, urls)`` is told, before anything is downloaded,
    that the vendor finished job ``job_id`` with these outputs: the job is billed from then on,
    and the pipeline records the charge and the job before a download can fail. ``answers``
    notes the 2xx answers to billed requests the call has had (``imagegen._answers``).
    """

    deadline: float | None = None
    on_outputs: Callable[[str, list[str]], None] | None = None
    answers: AnswerWatch | None = None


_CALL_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("imagegen_call_scope", default=None)


def current_scope() -> CallScope | None:
    return _CALL_SCOPE.get()


@contextlib.contextmanager
def call_scope(scope: CallScope) -> Iterator[None]:
    """Run the provider calls inside the block under ``scope`` (tasks they start inherit it)."""
    token = _CALL_SCOPE.set(scope)
    try:
        yield
    finally:
        _CALL_SCOPE.reset(token)


async def fetch_image(http: httpx.AsyncClient, url: str, *, provider: str,
                      policy: DownloadPolicy | None = None) -> Image:
    """Download one output image with address, size, redirect, time, type and decode checks.

    Every hop's URL is checked first (``_check_url``), whatever the client's transport: an
    injected one (a test's, a proxy's) gets that check only. On a client built on
    ``guarded_transport``, the connection itself then goes only to an address that passed.
    The whole download, redirects included, ends by ``policy.timeout_s`` or the call's
    deadline, whichever comes first (``ProviderTimeoutError``).
    """
    policy = policy or DownloadPolicy()
    scope = _CALL_SCOPE.get()
    started = time.monotonic()
    deadline = started + policy.timeout_s
    if scope is not None and scope.deadline is not None:
        deadline = min(deadline, scope.deadline)
    token = _DOWNLOAD_POLICY.set(policy)
    try:
        # Total time, not per read: a server trickling a byte a second never trips a read timeout.
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await _follow(http, url, provider, policy, deadline)
    except _RefusedAddress as exc:
        raise _private_refusal(provider, exc.host) from None
    except TimeoutError:
        raise ProviderTimeoutError(f"downloading {provider} output took longer than {deadline - started:.3g} s "
                                   "(the call's deadline or the download limit); refused", provider=provider) from None
    finally:
        _DOWNLOAD_POLICY.reset(token)


async def _follow(http: httpx.AsyncClient, url: str, provider: str, policy: DownloadPolicy,
                  deadline: float) -> Image:
    for _ in range(policy.max_redirects + 1):
        await _check_url(url, policy, provider, max(0.1, deadline - time.monotonic()))
        try:
            async with http.stream("GET", url, follow_redirects=False,
                                   timeout=max(0.1, deadline - time.monotonic())) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                data = await _read_capped(response, policy, provider, deadline)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(f"downloading {provider} output timed out", provider=provider) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailableError(
                f"downloading {provider} output failed: {type(exc).__name__}", provider=provider
            ) from exc
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
            raise InvalidResponseError(
                f"{provider} output URL served {ctype!r}, not an image", provider=provider,
                status_code=response.status_code)
        try:
            return Image.from_bytes(data, url=url, what=f"{provider} output image")
        except ProviderError:
            raise
        except Exception as exc:  # InvalidImageError: their bytes, not the caller's
            raise InvalidResponseError(str(exc), provider=provider) from exc
    raise InvalidResponseError(
        f"{provider} output URL redirected more than {policy.max_redirects} times; refused", provider=provider)


async def _read_capped(response: httpx.Response, policy: DownloadPolicy, provider: str, deadline: float) -> bytes:
    if response.status_code != 200:
        retryable = response.status_code >= 500 or response.status_code == 429
        cls = ProviderUnavailableError if retryable else InvalidResponseError
        raise cls(f"downloading {provider} output answered HTTP {response.status_code}",
                  provider=provider, status_code=response.status_code)
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise InvalidResponseError(
            f"{provider} output is {declared} bytes, over the {policy.max_bytes} allowed", provider=provider)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > policy.max_bytes:
            raise InvalidResponseError(
                f"{provider} output is over the {policy.max_bytes} bytes allowed; refused", provider=provider)
        chunks.append(chunk)
        # httpx's timeout is per read: a server trickling bytes would never trip it.
        if time.monotonic() > deadline:
            raise ProviderTimeoutError(
                f"downloading {provider} output ran past its deadline (the call's deadline or the "
                f"{policy.timeout_s:g} s download limit, whichever came first); refused", provider=provider)
    return b"".join(chunks)
