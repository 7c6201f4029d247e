"""imagegen builds the generateContent JSON itself and sends it through the SDK's API client.

The SDK's public ``generate_content`` is the fallback should a google-genai release move that
client. Both must put the same request on the wire and read the same answer, and with the
pinned google-genai the fast path must be the one in use (else the overhead table is wrong).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest

from imagegen import AsyncClient, InputImage
from imagegen.testing import LoopbackServer
from imagegen_gemini import _provider as gemini_provider
from imagegen_gemini._provider import GeminiProvider

from .conftest import API_KEY, config, png_bytes


class Capture(httpx.AsyncBaseTransport):
    """A real HTTP transport to the loopback emulator that keeps every request it sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def canonical(value: Any) -> Any:
    """proto3 JSON takes snake_case or lowerCamelCase names and standard or URL-safe base64:
    one spelling of each, so two requests compare by meaning."""
    if isinstance(value, dict):
        out = {_camel(k): canonical(v) for k, v in value.items()}
        blob = out.get("inlineData")
        if isinstance(blob, dict) and isinstance(blob.get("data"), str):
            text = blob["data"].replace("-", "+").replace("_", "/")
            blob["data"] = base64.b64encode(base64.b64decode(text + "=" * (-len(text) % 4))).decode()
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


CALLS: list[dict[str, Any]] = [
    {"prompt": "a lighthouse", "model": "gemini-3-pro-image"},
    {"prompt": "a lighthouse", "model": "gemini-3-pro-image", "aspect_ratio": "16:9", "size": "2K", "seed": 7},
    {"prompt": "a lighthouse", "model": "gemini-nano-banana-2.1",
     "options": {"include_thoughts": True, "thinking_level": "high", "google_search": True}},
    {"prompt": "a lighthouse", "model": "gemini-2.5-flash-image", "options": {"response_modalities": ["IMAGE"]}},
]


async def _sent(server: LoopbackServer, fast: bool, call: dict[str, Any], *, edit: bool = False,
                monkeypatch: pytest.MonkeyPatch) -> tuple[httpx.Request, Any]:
    monkeypatch.setattr(GeminiProvider, "sdk_fast_path", fast)
    capture = Capture()
    async with AsyncClient(config(server.base_url), transports={"gemini": capture}) as client:
        if edit:
            images = [InputImage(data=png_bytes(32, 32, "red")), InputImage(data=png_bytes(40, 30, "blue", "JPEG"))]
            result = await client.edit(call["prompt"], images=images, provider="gemini", model=call["model"])
        else:
            args = {k: v for k, v in call.items() if k not in ("prompt", "model")}
            result = await client.generate(call["prompt"], provider="gemini", model=call["model"], **args)
    (request,) = capture.requests
    return request, result


@pytest.mark.parametrize("call", CALLS, ids=["plain", "ratio-size-seed", "options", "image-only"])
async def test_both_paths_send_the_same_request_and_read_the_same_answer(server, emulator, call, monkeypatch):
    fast_request, fast = await _sent(server, True, call, monkeypatch=monkeypatch)
    sdk_request, sdk = await _sent(server, False, call, monkeypatch=monkeypatch)
    assert fast_request.url == sdk_request.url
    assert fast_request.url.path == f"/v1beta/models/{call['model']}:generateContent"
    for header in ("x-goog-api-key", "content-type", "x-goog-api-client"):
        assert fast_request.headers.get(header) == sdk_request.headers.get(header), header
    assert canonical(json.loads(fast_request.content)) == canonical(json.loads(sdk_request.content))
    assert [(i.width, i.height, i.mime_type) for i in fast.images] == \
        [(i.width, i.height, i.mime_type) for i in sdk.images]
    assert (fast.text, fast.usage, fast.cost) == (sdk.text, sdk.usage, sdk.cost)
    assert emulator.counters.snapshot()["calls"]["total"] == 2


async def test_both_paths_send_reference_images_the_same(server, emulator, monkeypatch):
    call = {"prompt": "make it night", "model": "gemini-3-pro-image"}
    fast_request, fast = await _sent(server, True, call, edit=True, monkeypatch=monkeypatch)
    sdk_request, sdk = await _sent(server, False, call, edit=True, monkeypatch=monkeypatch)
    body = canonical(json.loads(fast_request.content))
    parts = body["contents"][0]["parts"]
    assert [p.get("inlineData", {}).get("mimeType") for p in parts] == [None, "image/png", "image/jpeg"]
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == png_bytes(32, 32, "red")
    assert body == canonical(json.loads(sdk_request.content))
    assert fast.images[0].width == sdk.images[0].width


async def test_the_pinned_sdk_takes_the_fast_path(server, monkeypatch):
    used: list[str] = []
    real = gemini_provider._api_client_of

    def spy(client: Any) -> Any:
        api = real(client)
        used.append("fast" if api is not None else "fallback")
        return api

    monkeypatch.setattr(gemini_provider, "_api_client_of", spy)
    async with AsyncClient(config(server.base_url)) as client:
        for _ in range(2):
            await client.generate("a lighthouse", provider="gemini", model="gemini-3-pro-image")
    # Looked up once per SDK client: a google-genai upgrade that moves its API client fails here.
    assert used == ["fast"]


def test_an_sdk_without_the_known_api_client_falls_back():
    class Aio:
        pass

    class Unknown:
        aio = Aio()

    assert gemini_provider._api_client_of(Unknown()) is None

    class Api:
        vertexai = False

        async def async_request(self, method: str, url: str, body: dict[str, Any]) -> None:
            return None

    Unknown.aio._api_client = Api()  # type: ignore[attr-defined]
    assert gemini_provider._api_client_of(Unknown()) is None  # different parameter names


async def test_clients_share_one_tls_context(server, monkeypatch):
    """Loading the CA bundle takes ~40 ms; the provider's client and google-genai's must not
    load it again per client (they did, three times per provider)."""
    import ssl

    from imagegen._http import shared_ssl_context

    shared_ssl_context()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a second TLS context was made")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    async with AsyncClient(config(server.base_url)) as client:
        result = await client.generate("a lighthouse", provider="gemini", model="gemini-3-pro-image")
    assert result.images


async def test_a_key_authenticated_call_skips_the_sdks_per_call_wrapper(server, monkeypatch):
    """URL and headers are built by the SDK once; each call is sent by the provider's httpx
    client, not through the SDK's tenacity wrapper (a third of a call's client-side CPU)."""
    from google.genai import _api_client

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the SDK's per-call request wrapper was used")

    monkeypatch.setattr(_api_client.BaseApiClient, "_async_request", refuse)
    capture = Capture()
    async with AsyncClient(config(server.base_url), transports={"gemini": capture}) as client:
        for _ in range(2):
            result = await client.generate("a lighthouse", provider="gemini", model="gemini-3-pro-image")
    assert result.images
    assert [r.headers["x-goog-api-key"] for r in capture.requests] == [API_KEY] * 2
