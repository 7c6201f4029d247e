"""``PreparedPost``: a POST a provider makes on every call, built once, sent with less of httpx.

A call's POST goes to the same URL with the same headers and timeout every time; only the
body changes. ``http.request(...)`` merges URL, headers, cookies and timeout again on every
call, then passes the request through the client's layers (auth flow, redirect loop, hooks,
a streaming response read through four nested generators): together as much CPU as the
aiohttp transport under them, which is what limits calls in flight on a busy machine
(``benchmarks/concurrency.py``). ``PreparedPost`` merges once, as ``build_request`` would, and
where none of those layers would do anything -- the client's own aiohttp transport (no test's
or proxy's in its place), no cookies, no auth, no redirects followed, no hooks but imagegen's
billed-answer watch, nothing patched into the client (a recorder such as vcrpy) -- it hands the
request to the transport's ``exchange``, which reads the answer whole and keeps the watch.
Otherwise every call goes through ``http.request`` as before. The bytes on the wire are the
same either way (tested).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import httpx

from ._answers import watch_answer

__all__ = ["PreparedPost"]


class PreparedPost:
    """``await post.send(content)`` is ``await http.request("POST", url, headers=headers,
    timeout=timeout, content=content)``, with the merging done once."""

    def __init__(self, http: httpx.AsyncClient, url: httpx.URL | str, *, headers: Mapping[str, str],
                 timeout: float | None) -> None:
        self._http, self._headers, self._timeout = http, dict(headers), timeout
        template = http.build_request("POST", url, headers=self._headers, timeout=timeout)
        self.url = template.url
        #: The merged headers in the order httpx sends them (Content-Length follows the body).
        self._merged = httpx.Headers([(k, v) for k, v in template.headers.raw if k.lower() != b"content-length"])
        self._timeouts = template.extensions["timeout"]

    async def send(self, content: bytes) -> httpx.Response:
        http = self._http
        transport = _direct_transport(http, self.url)
        if transport is None:
            return await http.request("POST", self.url, headers=self._headers, timeout=self._timeout, content=content)
        # Content-Length last, where httpx puts it; the body as a stream, which spares httpx
        # working the headers out again (the same request, with less of its bookkeeping).
        headers = httpx.Headers(self._merged)
        headers["Content-Length"] = str(len(content))
        request = httpx.Request("POST", self.url, headers=headers, stream=httpx.ByteStream(content),
                                extensions={"timeout": self._timeouts})
        request._content = content  # what ``read()`` would keep: ``request.content`` works as usual
        exchanged: httpx.Response = await transport.exchange(request, content)
        if "set-cookie" in exchanged.headers:  # kept as the client keeps them (its later calls then send them)
            http.cookies.extract_cookies(exchanged)
        return exchanged


def _direct_transport(http: httpx.AsyncClient, url: httpx.URL) -> Any:
    """The client's aiohttp transport when the client's layers would add nothing, else None."""
    aiohttp_transport = sys.modules.get("imagegen._aiohttp")  # not loaded: no client runs on it
    if aiohttp_transport is None:
        return None
    client = type(http)
    if (http.is_closed or http.follow_redirects or http.cookies or http.auth is not None
            or http._event_hooks["request"] or http._event_hooks["response"] != [watch_answer]
            or client.send.__module__ != "httpx._client"
            or client._send_single_request.__module__ != "httpx._client"):
        return None
    transport = http._transport_for_url(url)
    transport = getattr(transport, "built", transport)  # ``guarded_transport``'s, once the first request made it
    return transport if type(transport) is aiohttp_transport.AiohttpTransport else None
