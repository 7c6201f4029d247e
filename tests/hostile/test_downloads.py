"""Output downloads (``imagegen._http.fetch_image``) under every rule, over real loopback HTTP.

The rules, checked on every hop including each redirect:

- only ``http``/``https`` URLs; plain ``http`` only from an allowed host (a provider's
  configured ``base_url`` host, e.g. its emulator);
- never a loopback, private, link-local, CGNAT or multicast address unless its host is
  allowed -- so a redirect from an allowed host to any *other* private address is refused;
- at most ``max_redirects`` redirects, ``max_bytes`` bytes (declared or streamed) and
  ``timeout_s`` seconds in all (a trickling server included);
- an image content type (or none, or octet-stream), and bytes that decode as an image.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from imagegen import InvalidResponseError, ProviderTimeoutError, ProviderUnavailableError
from imagegen._http import DownloadPolicy, fetch_image
from imagegen.testing import serve, synth_image

PNG = synth_image(8, 8, "png", seed=1)


async def _png(request):
    return Response(PNG, media_type="image/png")


async def _redirect(request):
    return RedirectResponse(request.query_params["to"], status_code=302)


async def _loop(request):
    return RedirectResponse("/loop", status_code=302)


async def _big_declared(request):
    return Response(b"\0" * 2048, media_type="image/png")


async def _big_streamed(request):
    async def body():
        for _ in range(64):
            yield b"\0" * 1024
    return StreamingResponse(body(), media_type="image/png")  # chunked: no Content-Length


async def _trickle(request):
    async def body():
        yield PNG[:8]
        for byte in PNG[8:]:
            await asyncio.sleep(0.05)
            yield bytes([byte])
    return StreamingResponse(body(), media_type="image/png")


async def _slow(request):
    await asyncio.sleep(2)
    return Response(PNG, media_type="image/png")


async def _html(request):
    return Response(b"<html><title>login</title></html>", media_type="text/html")


async def _text_as_png(request):
    return Response(b"this is not a picture", media_type="image/png")


async def _no_type(request):
    return Response(PNG, headers={"content-type": ""})


async def _status(request):
    return Response(b"gone", status_code=int(request.query_params["code"]))


APP = Starlette(routes=[Route(path, fn) for path, fn in {
    "/png": _png, "/redirect": _redirect, "/loop": _loop, "/big-declared": _big_declared,
    "/big-streamed": _big_streamed, "/trickle": _trickle, "/slow": _slow, "/html": _html,
    "/text-as-png": _text_as_png, "/no-type": _no_type, "/status": _status}.items()])


@pytest.fixture(scope="module")
def server():
    with serve(APP) as running:
        yield running


def _policy(**overrides) -> DownloadPolicy:
    return DownloadPolicy(**{"allow_hosts": frozenset({"127.0.0.1"}), "max_bytes": 1024, "timeout_s": 1.0,
                             "max_redirects": 3, **overrides})


async def _fetch(url: str, policy: DownloadPolicy):
    async with httpx.AsyncClient() as http:
        return await fetch_image(http, url, provider="p", policy=policy)


async def test_an_allowed_host_serves_an_image(server):
    image = await _fetch(f"{server.base_url}/png", _policy())
    assert (image.width, image.height, image.mime_type) == (8, 8, "image/png")


async def test_a_missing_content_type_is_judged_by_the_bytes(server):
    assert (await _fetch(f"{server.base_url}/no-type", _policy())).mime_type == "image/png"


async def test_a_redirect_within_the_allowed_host_is_followed(server):
    image = await _fetch(f"{server.base_url}/redirect?to=/png", _policy())
    assert image.url == f"{server.base_url}/png"


REFUSED = [
    # (what, url template, policy overrides, message fragment)
    ("loopback not configured (http)", "{base}/png", {"allow_hosts": frozenset()}, "not https"),
    ("loopback not configured (https)", "https://127.0.0.1:{port}/png", {"allow_hosts": frozenset()}, "private"),
    ("localhost by name", "https://localhost:{port}/png", {}, "private"),
    ("private 10/8", "https://10.0.0.7/x.png", {}, "private"),
    ("private 192.168/16", "https://192.168.1.1/x.png", {}, "private"),
    ("cloud metadata (link-local)", "https://169.254.169.254/latest/meta-data", {}, "private"),
    ("CGNAT", "https://100.64.0.1/x.png", {}, "private"),
    ("IPv6 loopback", "https://[::1]/x.png", {}, "private"),
    ("IPv4-mapped IPv6", "https://[::ffff:10.0.0.1]/x.png", {}, "private"),
    ("unspecified", "https://0.0.0.0/x.png", {}, "private"),
    ("file scheme", "file:///etc/passwd", {}, "not http(s)"),
    ("ftp scheme on an allowed host", "ftp://127.0.0.1/x.png", {}, "not http(s)"),
    ("data URL", "data:image/png;base64,AAAA", {}, "not http(s)"),
    ("no host", "https:///x.png", {}, "not http(s)"),
    ("redirect from an allowed host to a private address", "{base}/redirect?to=https://10.1.2.3/x.png", {},
     "private"),
    ("redirect from an allowed host to another loopback name", "{base}/redirect?to=http://localhost:{port}/png",
     {}, "not https"),
    ("redirect to a file URL", "{base}/redirect?to=file:///etc/passwd", {}, "not http(s)"),
    ("redirect loop", "{base}/loop", {}, "redirected more than 3 times"),
    ("too many redirects allowed zero", "{base}/redirect?to=/png", {"max_redirects": 0}, "redirected more than 0"),
    ("oversized, declared", "{base}/big-declared", {}, "over the 1024"),
    ("oversized, streamed without a length", "{base}/big-streamed", {}, "over the 1024"),
    ("HTML instead of an image", "{base}/html", {}, "'text/html', not an image"),
    ("non-image bytes labelled image/png", "{base}/text-as-png", {}, "not a readable image"),
    ("404", "{base}/status?code=404", {}, "HTTP 404"),
]


@pytest.mark.parametrize(("what", "url", "overrides", "fragment"), REFUSED, ids=[c[0] for c in REFUSED])
async def test_refused(server, what, url, overrides, fragment):
    with pytest.raises(InvalidResponseError) as info:
        await _fetch(url.format(base=server.base_url, port=server.port), _policy(**overrides))
    assert fragment in info.value.message
    assert info.value.provider == "p"


async def test_a_5xx_is_transient(server):
    with pytest.raises(ProviderUnavailableError) as info:
        await _fetch(f"{server.base_url}/status?code=503", _policy())
    assert info.value.retryable and info.value.status_code == 503


async def test_a_server_that_never_answers_times_out(server):
    with pytest.raises(ProviderTimeoutError):
        await _fetch(f"{server.base_url}/slow", _policy(timeout_s=0.3))


async def test_a_trickling_server_is_cut_off_at_the_overall_limit(server):
    # Every byte arrives well within the per-read timeout; only the overall limit stops it.
    with pytest.raises(ProviderTimeoutError, match="longer than 0.5 s"):
        await _fetch(f"{server.base_url}/trickle", _policy(timeout_s=0.5, max_bytes=10**6))
