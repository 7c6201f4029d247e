"""Every fault kind, rendered by a real uvicorn server and observed by a real httpx client."""

from __future__ import annotations

import io
import json
import logging

import anyio
import httpx
import pytest
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from imagegen.testing import Emulator, Fault, FaultPlan, serve

from .echo import EchoEmulator

GENERATE = {"width": 32, "height": 32}


def _generate(http: httpx.Client) -> httpx.Response:
    return http.post("/generate", json=GENERATE)


def test_without_faults_the_handler_answers(echo: EchoEmulator, http: httpx.Client) -> None:
    response = _generate(http)
    assert response.status_code == 200
    assert response.json()["url"].startswith(http.base_url.scheme + "://")
    assert echo.counters.total_credits == 1
    assert echo.counters.faults == {}


def test_rate_limit_sends_429_with_retry_after(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.script(Fault("rate_limit", retry_after=3.7), "rate_limit")
    hinted, bare = _generate(http), _generate(http)
    assert hinted.status_code == bare.status_code == 429
    assert hinted.headers["retry-after"] == "3"
    assert "retry-after" not in bare.headers
    assert hinted.json()["error"]["code"] == 429
    assert echo.counters.faults == {"rate_limit": 2}
    assert echo.counters.charges == []


@pytest.mark.parametrize(
    ("fault", "status"), [("server_error", 503), (Fault("server_error", status=500), 500)]
)
def test_server_error_uses_the_vendor_envelope(
    echo: EchoEmulator, http: httpx.Client, fault: Fault | str, status: int
) -> None:
    echo.faults = FaultPlan.script(fault)
    response = _generate(http)
    assert response.status_code == status
    assert response.json()["error"]["code"] == status
    assert echo.counters.charges == []


def test_timeout_stalls_then_answers_504_without_running_the_handler(
    echo: EchoEmulator, http: httpx.Client
) -> None:
    echo.faults = FaultPlan.script(Fault("timeout", delay=0.2))
    response = _generate(http)
    assert response.status_code == 504
    assert response.elapsed.total_seconds() >= 0.19
    assert echo.counters.charges == [] and echo.counters.get("images") == 0


def test_timeout_trips_a_client_read_timeout(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.script(Fault("timeout", delay=30))
    with pytest.raises(httpx.ReadTimeout):
        http.post("/generate", json=GENERATE, timeout=0.2)
    assert _generate(http).status_code == 200  # the server is not stuck behind the stall


async def test_a_stalled_request_ends_when_its_client_disconnects() -> None:
    emulator = EchoEmulator(faults=FaultPlan.script(Fault("timeout", delay=30)))
    scope = {"type": "http", "method": "POST", "path": "/generate", "headers": []}
    scope["query_string"] = b""
    messages = iter([{"type": "http.request", "body": b"{}"}, {"type": "http.disconnect"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await emulator.app(scope, receive, send)
    assert sent == []


def test_drop_bills_the_answer_then_cuts_the_connection_mid_response(
    echo: EchoEmulator, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    full = _generate(http).content
    echo.faults = FaultPlan.script("drop")
    with caplog.at_level(logging.WARNING), pytest.raises(httpx.RemoteProtocolError, match=str(len(full))):
        _generate(http)
    assert _generate(http).status_code == 200  # a new connection works
    assert echo.counters.faults == {"drop": 1}
    assert echo.counters.total_credits == 3  # the dropped answer was made, so billed, as a vendor would
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


def test_drop_is_seen_by_a_streaming_client_after_the_headers(
    echo: EchoEmulator, http: httpx.Client
) -> None:
    echo.faults = FaultPlan.script("drop")
    with http.stream("POST", "/generate", json=GENERATE) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.TransportError):
            response.read()


def test_truncate_sends_half_the_real_body_as_a_complete_message(
    echo: EchoEmulator, http: httpx.Client
) -> None:
    full = _generate(http).content
    echo.faults = FaultPlan.script("truncate")
    response = _generate(http)
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content) == len(full) // 2
    assert full.startswith(response.content[:10])
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert echo.counters.total_credits == 2  # the handler ran and billed


def test_truncate_can_target_file_downloads(echo: EchoEmulator, http: httpx.Client) -> None:
    url = _generate(http).json()["url"]
    echo.faults = FaultPlan.script("truncate", path=r"^/files/")
    broken = http.get(url)
    assert broken.status_code == 200 and broken.headers["content-type"] == "image/png"
    with pytest.raises(OSError):
        Image.open(io.BytesIO(broken.content)).load()
    Image.open(io.BytesIO(http.get(url).content)).load()


def test_malformed_answers_200_with_an_unexpected_body(
    echo: EchoEmulator, http: httpx.Client
) -> None:
    echo.faults = FaultPlan.script("malformed", Fault("malformed", body=b"[1, 2"))
    default, custom = _generate(http), _generate(http)
    assert default.status_code == 200 and default.json() == {"unexpected": "shape"}
    assert default.headers["content-type"] == "application/json"
    assert custom.content == b"[1, 2"
    assert echo.counters.total_credits == 2  # the answers were made (and billed) before their bodies were swapped


def test_html_answers_a_proxy_error_page(echo: EchoEmulator, http: httpx.Client) -> None:
    echo.faults = FaultPlan.script("html", Fault("html", status=504))
    default, custom = _generate(http), _generate(http)
    assert default.status_code == 502
    assert default.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in default.text and "nginx" in default.text
    assert custom.status_code == 504 and "<title>504 Gateway Timeout</title>" in custom.text
    with pytest.raises(json.JSONDecodeError):
        default.json()


def test_kit_routes_are_not_faulted_by_default(echo: EchoEmulator, http: httpx.Client) -> None:
    url = _generate(http).json()["url"]
    echo.faults = FaultPlan.random({"server_error": 1.0})
    assert http.get(url).status_code == 200
    assert http.get("/_emulator/counters").status_code == 200
    assert _generate(http).status_code == 503


def test_random_plan_gives_the_same_statuses_for_the_same_seed() -> None:
    def statuses() -> list[int]:
        plan = FaultPlan.random({"server_error": 0.3, "rate_limit": 0.3, "malformed": 0.2}, seed=11)
        with serve(EchoEmulator(faults=plan)) as server:
            with httpx.Client(base_url=server.base_url) as http:
                return [_generate(http).status_code for _ in range(20)]

    first = statuses()
    assert first == statuses()
    assert {200, 429, 503} <= set(first)


class VendorEmulator(Emulator):
    """Speaks a Gemini-like error format and puts the retry hint in the body."""

    name = "vendor"

    def routes(self) -> list[BaseRoute]:
        return [Route("/go", self.go, methods=["POST"])]

    async def go(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    def error_response(self, status: int, message: str, *, fault: Fault | None = None) -> Response:
        error = {"code": status, "message": message, "status": "RESOURCE_EXHAUSTED"}
        if fault and fault.retry_after is not None:
            error["details"] = [{"retryDelay": f"{fault.retry_after}s"}]
        return JSONResponse({"error": error}, status_code=status)

    def rate_limit_headers(self, fault: Fault) -> dict[str, str]:
        return {}


def test_subclasses_shape_injected_errors() -> None:
    emulator = VendorEmulator(faults=FaultPlan.script(Fault("rate_limit", retry_after=2)))
    with serve(emulator) as server:
        response = httpx.post(server.base_url + "/go")
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.json()["error"]["details"] == [{"retryDelay": "2s"}]
