"""Every refusal and error shape of the spec, each to its typed error with Google's own words."""

from __future__ import annotations

import time

import httpx
import pytest

from imagegen import (
    AnswerLostError,
    AuthenticationError,
    Client,
    ContentPolicyError,
    ImageRequest,
    InsufficientCreditsError,
    InvalidRequestError,
    NoImageReturnedError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderInvalidRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import ErrorReply
from imagegen.testing import Fault, FaultPlan, LatencyModel, serve
from imagegen_gemini import GeminiProvider
from imagegen_gemini.emulator import create_emulator, refusal_fault

from .conftest import API_KEY, config

# -- HTTP 200 without an image -----------------------------------------------------------------

REFUSALS = [
    # marker, error, reason, words from the answer
    ("[[IMAGE_SAFETY]]", ContentPolicyError, "IMAGE_SAFETY", "You will not be charged for blocked images"),
    ("[[IMAGE_PROHIBITED_CONTENT]]", ContentPolicyError, "IMAGE_PROHIBITED_CONTENT", "Support code: 11030041"),
    ("[[FINISH:SAFETY]]", ContentPolicyError, "SAFETY", None),
    ("[[FINISH:PROHIBITED_CONTENT]]", ContentPolicyError, "PROHIBITED_CONTENT", None),
    ("[[BLOCK_PROMPT]]", ContentPolicyError, "PROHIBITED_CONTENT", None),
    ("[[BLOCK:SAFETY]]", ContentPolicyError, "SAFETY", None),
    ("[[NO_IMAGE]]", NoImageReturnedError, "NO_IMAGE", None),
    ("[[TEXT_ONLY]]", NoImageReturnedError, "STOP", "I cannot fulfill this request"),
    ("[[FINISH:IMAGE_OTHER]]", NoImageReturnedError, "IMAGE_OTHER", None),
    ("[[FINISH:SOMETHING_NEW]]", NoImageReturnedError, "SOMETHING_NEW", None),  # unknown reasons tolerated
]


@pytest.mark.parametrize(("marker", "error", "reason", "words"), REFUSALS)
def test_refusals_by_prompt_marker(client: Client, emulator, marker, error, reason, words) -> None:
    with pytest.raises(error) as info:
        client.generate(f"a scene {marker}", provider="gemini", model="gemini-3-pro-image")
    exc = info.value
    assert exc.retryable is False and exc.provider == "gemini" and exc.status_code == 200
    assert reason in str(exc)
    if words:
        assert words in str(exc)
    if isinstance(exc, ContentPolicyError):
        assert exc.reason == reason
    if marker == "[[TEXT_ONLY]]":
        assert exc.text.startswith("I cannot fulfill")
    assert exc.body["usage"]["input_tokens"] > 0  # prompt (and thinking) tokens are still reported
    assert emulator.counters.total_usd == 0  # blocked images are not charged


@pytest.mark.parametrize("kind", ["IMAGE_SAFETY", "NO_IMAGE", "BLOCK", "TEXT_ONLY", "IMAGE_PROHIBITED_CONTENT"])
def test_refusals_by_fault_plan(client: Client, emulator, kind: str) -> None:
    emulator.faults = FaultPlan.script(refusal_fault(kind), "ok")
    with pytest.raises((ContentPolicyError, NoImageReturnedError)):
        client.generate("an innocent prompt", provider="gemini")
    assert client.generate("an innocent prompt", provider="gemini").images


# -- error envelopes ---------------------------------------------------------------------------

ERRORS = [
    # marker, error, status, retryable, words
    ("[[ERROR:capacity]]", RateLimitError, 429, True, "Resource has been exhausted"),
    ("[[ERROR:prepayment]]", InsufficientCreditsError, 429, False, "prepayment credits are depleted"),
    ("[[ERROR:internal]]", ProviderUnavailableError, 500, True, "An internal error has occurred"),
    ("[[ERROR:unavailable]]", ProviderUnavailableError, 503, True, "The model is overloaded"),
    ("[[ERROR:deadline]]", ProviderTimeoutError, 504, True, "Deadline expired"),
    ("[[ERROR:location]]", PermissionDeniedError, 400, False, "User location is not supported"),
    ("[[ERROR:permission]]", PermissionDeniedError, 403, False, "does not have permission"),
]


@pytest.mark.parametrize(("marker", "error", "status", "retryable", "words"), ERRORS)
def test_error_envelopes(client: Client, marker, error, status, retryable, words) -> None:
    with pytest.raises(error) as info:
        client.generate(f"a fox {marker}", provider="gemini")
    exc = info.value
    assert (exc.status_code, exc.retryable) == (status, retryable)
    assert words in str(exc)


def test_quota_429_carries_retry_info(client: Client, server) -> None:
    with pytest.raises(RateLimitError) as info:
        client.generate("a fox [[ERROR:quota]]", provider="gemini")
    assert info.value.retry_after == 34.0 and info.value.retryable
    assert "You exceeded your current quota" in str(info.value)
    raw = httpx.post(f"{server.base_url}/v1beta/models/gemini-3-pro-image:generateContent",
                     headers={"x-goog-api-key": API_KEY},
                     json={"contents": [{"parts": [{"text": "[[ERROR:quota:2.5]]"}]}]})
    assert raw.status_code == 429 and "retry-after" not in raw.headers
    details = raw.json()["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"} in details


def test_injected_rate_limit_speaks_googles_envelope(client: Client, emulator) -> None:
    emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.25), Fault("rate_limit"), "ok")
    with pytest.raises(RateLimitError) as quota:
        client.generate("a fox", provider="gemini")
    with pytest.raises(RateLimitError) as capacity:
        client.generate("a fox", provider="gemini")
    assert quota.value.retry_after == 0.25 and capacity.value.retry_after is None
    assert client.generate("a fox", provider="gemini").images  # 429, 429, then success


@pytest.mark.parametrize(("fault", "error"), [
    (Fault("server_error"), ProviderUnavailableError),
    (Fault("server_error", status=500), ProviderUnavailableError),
    (Fault("html"), ProviderUnavailableError),
    # A 200 whose body is cut or cannot be read was billed: recorded, never sent again.
    (Fault("truncate"), AnswerLostError),
    (Fault("malformed"), AnswerLostError),
    (Fault("malformed", body=b"not json at all"), AnswerLostError),
    (Fault("drop"), AnswerLostError),
])
def test_transport_and_body_faults(client: Client, emulator, fault: Fault, error) -> None:
    emulator.faults = FaultPlan.script(fault)
    with pytest.raises(error) as info:
        client.generate("a fox", provider="gemini")
    text = str(info.value)
    assert "<html" not in text and "Traceback" not in text
    if fault.kind == "html":
        assert "502 Bad Gateway" in text
    assert len(emulator.counters.charges) == (error is AnswerLostError)


def test_timeout_is_provider_timeout(server, emulator) -> None:
    emulator.faults = FaultPlan.script(Fault("timeout", delay=3))
    with Client(config(server.base_url, timeout=0.3)) as client:
        start = time.monotonic()
        with pytest.raises(ProviderTimeoutError):
            client.generate("a fox", provider="gemini")
    assert time.monotonic() - start < 2.5


def test_bad_key_is_authentication(server) -> None:
    cfg = config(server.base_url)
    cfg["providers"]["gemini"]["api_key"] = "sk-wrong-secret"
    with Client(cfg) as client, pytest.raises(AuthenticationError) as info:
        client.generate("a fox", provider="gemini")
    assert info.value.status_code == 400 and "API key not valid" in str(info.value)
    assert "sk-wrong-secret" not in str(info.value) and "sk-wrong-secret" not in repr(info.value)


def test_no_key_is_403_then_authentication(server) -> None:
    raw = httpx.post(f"{server.base_url}/v1beta/models/gemini-3-pro-image:generateContent",
                     json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert raw.status_code == 403 and raw.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "unregistered callers" in raw.json()["error"]["message"]


def test_missing_key_is_a_configuration_error_naming_the_variables(server) -> None:
    cfg = config(server.base_url)
    del cfg["providers"]["gemini"]["api_key"]
    from imagegen import MissingCredentialsError

    with Client(cfg) as client, pytest.raises(MissingCredentialsError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        client.generate("a fox", provider="gemini")


def test_api_key_from_the_environment(server, monkeypatch) -> None:
    cfg = config(server.base_url)
    del cfg["providers"]["gemini"]["api_key"]
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    with Client(cfg) as client:
        assert client.generate("a fox", provider="gemini").images


async def test_unknown_model_404_names_the_model(server) -> None:
    """A model the data knows but the service does not: the 404 is translated, naming it."""
    provider = GeminiProvider(instance_name="gemini",
                              settings=GeminiProvider.Settings(base_url=server.base_url, api_key=API_KEY),
                              http=httpx.AsyncClient())
    spec = provider.model_spec("gemini-3-pro-image").model_copy(update={"id": "gemini-3.6-flahs-image"})
    request = ImageRequest(prompt="a fox")
    try:
        with pytest.raises(NotFoundError) as info:
            await provider.generate(request, spec, deadline=time.monotonic() + 10)
    finally:
        sync_http = provider._sync_http
        await provider.aclose()
        await provider.http.aclose()
    assert sync_http is not None and sync_http.is_closed  # the provider closes the client it owns
    assert "gemini-3.6-flahs-image" in str(info.value) and "ListModels" in str(info.value)
    assert info.value.status_code == 404


def test_retired_model_404_names_the_replacement() -> None:
    emulator = create_emulator(latency=LatencyModel.none(), enforce_shutdowns=True)
    with serve(emulator) as server, Client(config(server.base_url)) as client:
        with pytest.raises(NotFoundError) as info:
            client.generate("a fox", provider="gemini", model="gemini-3.1-flash-image")
    assert "no longer available" in str(info.value)
    assert "replaced by gemini-nano-banana-2.1" in str(info.value)


def test_every_sdk_exception_is_translated() -> None:
    """The one choke point maps each google-genai error class (and transport errors) into the tree;
    anything else is a bug it leaves alone (unreadable answers are read inside ``parsing()``)."""
    import json

    from google.genai import errors

    provider = GeminiProvider(instance_name="gemini", settings=GeminiProvider.Settings(api_key="k"),
                              http=httpx.AsyncClient())
    cases = [
        (errors.ClientError(400, {"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}),
         ProviderInvalidRequestError),
        (errors.ClientError(401, {"error": {"code": 401, "message": "no", "status": "UNAUTHENTICATED"}}),
         AuthenticationError),
        (errors.ServerError(503, {"error": {"code": 503, "message": "down", "status": "UNAVAILABLE"}}),
         ProviderUnavailableError),
        (errors.APIError(302, {"message": "moved", "status": "Found"}), ProviderError),
        (httpx.ReadTimeout("slow"), ProviderTimeoutError),
        (httpx.ConnectError("refused"), ProviderUnavailableError),
    ]
    for exc, expected in cases:
        translated = provider.translate_error(exc)
        assert isinstance(translated, expected), (exc, translated)
        assert translated.provider == "gemini"
    for bug in (json.JSONDecodeError("Expecting value", "{", 1), KeyError("candidates")):
        assert provider.translate_error(bug) is None


def test_an_unsupported_aspect_ratio_is_a_provider_invalid_request(client: Client) -> None:
    """Google's 400 INVALID_ARGUMENT reaches the caller as an invalid request (routes move on)."""
    provider = client.provider("gemini")
    body = {"error": {"code": 400, "message": "Aspect ratio 1:4 is not supported for this model",
                      "status": "INVALID_ARGUMENT"}}
    error = provider.status_error(ErrorReply(400, body=body))
    assert isinstance(error, ProviderInvalidRequestError) and isinstance(error, InvalidRequestError)
    assert "Aspect ratio 1:4 is not supported" in error.message and error.code == "INVALID_ARGUMENT"
    assert not error.retryable and error.status_code == 400
