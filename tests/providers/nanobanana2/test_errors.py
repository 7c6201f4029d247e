"""Every error shape the API (or a proxy in front of it) can answer, mapped to a typed error."""

from __future__ import annotations

import json

import httpx
import pytest

from imagegen import (
    AnswerLostError,
    AuthenticationError,
    Client,
    ContentPolicyError,
    ImageGenError,
    InsufficientCreditsError,
    InvalidImageError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    OutputUnavailableError,
    PermissionDeniedError,
    ProviderInvalidRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import ErrorReply
from imagegen.testing import Fault, FaultPlan

from .conftest import API_KEY, config

GENERATE = "POST /api/v1/generate"


def run(start, *, faults=None, settings=None, prompt="a fox", **emulator_options):
    """One generate call; no router retries unless ``settings`` asks (error mapping is under test)."""
    emulator, server = start(faults=faults, **emulator_options)
    with Client(config(server, **{"max_retries": 0, **(settings or {})})) as client:
        try:
            return emulator, client.generate(prompt, provider="nanobanana2"), None
        except ImageGenError as exc:
            assert API_KEY not in str(exc) and API_KEY not in repr(exc.to_dict())
            return emulator, None, exc


def script(*steps, path=r"/generate$"):
    return FaultPlan.script(*steps, path=path)


def test_401_is_authentication_error_and_not_retried(start):
    emulator, _, error = run(start, api_keys=["nb2_other"])
    assert isinstance(error, AuthenticationError) and error.status_code == 401
    assert "Invalid or missing API key" in error.message and "NANO_BANANA_API_KEY" in error.message
    assert emulator.counters.calls[GENERATE] == 1


def test_402_is_insufficient_credits(start):
    emulator, _, error = run(start, balances={API_KEY: 2})
    assert isinstance(error, InsufficientCreditsError) and error.status_code == 402
    assert "Insufficient credits" in error.message and not error.retryable
    assert emulator.counters.calls[GENERATE] == 1 and emulator.balance(API_KEY) == 2


def test_404_route_is_not_found_naming_base_url(start):
    emulator, server = start()
    cfg = config(server)
    cfg["providers"]["nanobanana2"]["base_url"] = server.base_url + "/api/v2"
    with Client(cfg) as client, pytest.raises(NotFoundError, match="check base_url"):
        client.generate("x", provider="nanobanana2")


def test_413_upload_too_large_is_invalid_image(start, png):
    emulator, server = start(max_upload_bytes=200)
    with Client(config(server)) as client, pytest.raises(InvalidImageError, match="too large") as info:
        client.edit("x", images=[png], provider="nanobanana2")
    assert info.value.to_dict()["status_code"] == 413


@pytest.mark.parametrize(("status", "error"), [
    (400, ProviderInvalidRequestError), (403, PermissionDeniedError), (422, ProviderInvalidRequestError),
    (500, ProviderUnavailableError), (502, ProviderUnavailableError), (503, ProviderUnavailableError),
    (504, ProviderTimeoutError),
])
def test_status_codes_map_to_typed_errors(start, status, error):
    emulator, _, exc = run(start, faults=script(*[Fault("server_error", status=status)] * 4),
                           settings={"max_retries": 1})
    assert type(exc) is error
    assert exc.to_dict()["status_code"] == status
    assert "(injected fault)" in exc.message  # the vendor's own words
    assert emulator.counters.calls[GENERATE] == (2 if status >= 500 else 1)


def test_json_message_key_is_read(start):
    _, _, exc = run(start, faults=script(Fault("server_error", status=400)), error_key="message")
    assert isinstance(exc, InvalidRequestError) and "Bad Request. (injected fault)" in exc.message


def test_429_then_success_honours_retry_after_header(start):
    emulator, res, exc = run(start, faults=script(Fault("rate_limit", retry_after=0)), settings={"max_retries": 2})
    assert exc is None and res.images
    assert emulator.counters.calls[GENERATE] == 2 and emulator.counters.faults == {"rate_limit": 1}


@pytest.mark.parametrize("hint", ["header", "body", "both"])
def test_429_wait_hint_from_header_or_body(start, hint):
    _, _, exc = run(start, faults=script(Fault("rate_limit", retry_after=7)), retry_hint=hint,
                    settings={"max_retries": 0})
    assert isinstance(exc, RateLimitError) and exc.retry_after == 7 and exc.retryable
    assert "wait 7 s" in exc.message


def test_429_longer_than_max_wait_is_raised_at_once(start):
    emulator, _, exc = run(start, faults=script(Fault("rate_limit", retry_after=90)), settings={"max_retries": 2})
    assert isinstance(exc, RateLimitError) and exc.retry_after == 90
    assert emulator.counters.calls[GENERATE] == 1


def test_429_retries_are_bounded(start):
    emulator, _, exc = run(start, faults=script(*[Fault("rate_limit", retry_after=0)] * 5),
                           settings={"max_retries": 2})
    assert isinstance(exc, RateLimitError)
    assert emulator.counters.calls[GENERATE] == 3  # the router's default: 3 tries in all


def test_5xx_without_hint_backs_off_then_succeeds(start):
    emulator, res, exc = run(start, faults=script(Fault("server_error"), Fault("server_error", status=500)),
                             settings={"max_retries": 2})
    assert exc is None and res.images and emulator.counters.calls[GENERATE] == 3


def test_status_poll_retries_429(start):
    """A 429 on a poll is retried by resuming the submitted job: nothing is generated twice."""
    emulator, res, exc = run(start, mode="async", settings={"max_retries": 2},
                             faults=script(Fault("rate_limit", retry_after=0), path=r"/status/"))
    assert exc is None and res.images
    assert emulator.counters.calls["GET /api/v1/status/{job_id}"] == 3
    assert emulator.counters.calls[GENERATE] == 1


def test_html_error_page(start):
    _, _, exc = run(start, faults=script(Fault("html")), settings={"max_retries": 0})
    assert isinstance(exc, ProviderUnavailableError) and "HTML page ('502 Bad Gateway')" in exc.message


def test_html_page_on_400_is_invalid_request(start):
    _, _, exc = run(start, faults=script(Fault("html", status=400)))
    assert isinstance(exc, InvalidRequestError) and "HTML page" in exc.message


def test_html_with_200_counts_as_a_billed_answer_lost(start):
    # A 200 is taken at its word: billed, so recorded and never sent again (imagegen._answers).
    _, _, exc = run(start, faults=script(Fault("html", status=200)))
    assert isinstance(exc, AnswerLostError) and "HTML page" in exc.message


# A truncated submit answer whose job id survived is followed by polling instead
# (tests/soak/test_fault_recovery.py); a body cut before the id is still refused.
@pytest.mark.parametrize("fault", [Fault("malformed"), Fault("malformed", body=b"[1, 2"),
                                   Fault("malformed", body=b'{"id": "gen_1')])
def test_unparsable_or_unexpected_bodies_are_billed_answers_lost(start, fault):
    emulator, _, exc = run(start, faults=script(fault))
    assert isinstance(exc, AnswerLostError) and isinstance(exc.__cause__, InvalidResponseError)
    assert len(emulator.counters.charges) == 1  # billed once, never sent again


def test_a_connection_dropped_after_the_200_is_a_billed_answer_lost(start):
    emulator, _, exc = run(start, faults=script(Fault("drop")))
    assert isinstance(exc, AnswerLostError) and not exc.retryable and exc.job_id
    assert len(emulator.counters.charges) == 1


def test_read_timeout_is_provider_timeout(start):
    _, _, exc = run(start, faults=script(Fault("timeout", delay=2)), settings={"timeout": 0.2})
    assert isinstance(exc, ProviderTimeoutError)


def test_download_failure_is_typed(start):
    # One 5xx is tried again; a download that keeps failing is a billed job's missing output.
    emulator, result, _ = run(start, faults=script(Fault("server_error"), path=r"^/files/"),
                              settings={"max_retries": 0})
    assert result is not None and emulator.counters.faults == {"server_error": 1}
    # (tried three times, then once more from a fresh poll: a CDN that keeps failing fails it)
    emulator, _, exc = run(start, faults=script(*[Fault("server_error")] * 10, path=r"^/files/"),
                           settings={"max_retries": 0})
    assert isinstance(exc, OutputUnavailableError) and "downloading" in exc.message
    assert exc.job_id == f"nanobanana2:{emulator.counters.charges[0]['ref']}" and len(exc.urls) == 1


@pytest.fixture
def provider(start):
    _, server = start()
    with Client(config(server)) as client:
        yield client.provider("nanobanana2")


def _status_error(provider, status, body, path="/api/v1/generate", headers=None):
    request = httpx.Request("POST", "http://127.0.0.1" + path)
    response = httpx.Response(status, content=json.dumps(body).encode(), request=request, headers=headers)
    return provider.status_error(ErrorReply.from_response(response))


def test_error_bodies_of_every_known_shape(provider):
    exc = _status_error(provider, 400, {"error": {"code": "content_policy", "message": "Prompt refused"}})
    assert isinstance(exc, ContentPolicyError) and exc.reason == "content_policy"
    assert exc.provider_message == "Prompt refused"
    exc = _status_error(provider, 402, {"error": "Insufficient credits", "required": 8, "balance": 3})
    assert isinstance(exc, InsufficientCreditsError) and (exc.required, exc.available) == (8, 3)
    exc = _status_error(provider, 429, {"detail": "Request was throttled", "retry_after": 10})
    assert isinstance(exc, RateLimitError) and exc.retry_after == 10 and "throttled" in exc.message
    exc = _status_error(provider, 429, {}, headers={"Retry-After": "3", "x-request-id": "req_1"})
    assert exc.retry_after == 3 and exc.request_id == "req_1"
    exc = _status_error(provider, 418, {"message": "teapot"})
    assert type(exc).__name__ == "ProviderError" and not exc.retryable and "teapot" in exc.message
    exc = _status_error(provider, 401, {"error": f"bad key {API_KEY}"})
    assert API_KEY not in exc.message and "***" in exc.message


@pytest.mark.parametrize("vendor_exc", [
    httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("cut"),
])
def test_every_transport_exception_is_translated(provider, vendor_exc):
    assert isinstance(provider.translate_error(vendor_exc), ProviderUnavailableError)


@pytest.mark.parametrize("bug", [json.JSONDecodeError("bad", "", 0), KeyError("id"), TypeError("list")])
def test_anything_else_is_a_bug_left_untranslated(provider, bug):
    # Unreadable answers are read inside parsing(); outside it, these are bugs and propagate.
    assert provider.translate_error(bug) is None
