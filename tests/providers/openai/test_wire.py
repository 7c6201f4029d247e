"""Response parsing (every shape from 2023 to 2026), usage, cost, streams and error mapping: pure."""

from __future__ import annotations

import base64
import functools

import httpx
import pytest

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    ProviderInvalidImageError,
    ProviderInvalidRequestError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import ErrorReply
from imagegen.testing import synth_image
from imagegen_openai import OpenAIProvider, OpenAISettings
from imagegen_openai._catalog import load_catalog
from imagegen_openai._pricing import cost_of, flat_cost
from imagegen_openai._vendor_errors import parse_duration, retry_hint
from imagegen_openai._wire import parse_images, read_sse, usage_of

SPECS = {spec.id: spec for spec in load_catalog()}
B64 = base64.b64encode(synth_image(32, 16, "png", seed=3)).decode()


def test_the_2025_shape_without_echo_fields_or_output_details():
    parsed = parse_images({"created": 1747874111, "data": [{"b64_json": B64}],
                           "usage": {"input_tokens": 10, "input_tokens_details": {"image_tokens": 0, "text_tokens": 10},
                                     "output_tokens": 1056, "total_tokens": 1066}})
    assert parsed.echo == {} and parsed.items[0].data == base64.b64decode(B64)
    usage = usage_of(parsed.usage)
    assert (usage.image_tokens, usage.text_tokens, usage.output_tokens) == (1056, 0, 1056)
    assert cost_of(usage, SPECS["gpt-image-1"]).usd == pytest.approx(10 * 5e-6 + 1056 * 40e-6)


def test_the_2026_shape_with_echo_text_tokens_and_a_free_size():
    body = {"created": 1, "background": "opaque", "output_format": "png", "quality": "medium", "size": "1536x864",
            "data": [{"b64_json": B64}], "brand_new_field": {"ignored": True},
            "usage": {"input_tokens": 221, "input_tokens_details": {"image_tokens": 194, "text_tokens": 27},
                      "output_tokens": 1318, "output_tokens_details": {"image_tokens": 1056, "text_tokens": 262},
                      "total_tokens": 1539}}
    parsed = parse_images(body)
    assert parsed.echo == {"background": "opaque", "output_format": "png", "quality": "medium", "size": "1536x864"}
    cost = cost_of(usage_of(parsed.usage), SPECS["gpt-image-1.5"])
    assert cost.breakdown == {"text_input": 0.000135, "image_input": 0.001552, "image_output": 0.033792,
                              "text_output": 0.00262}
    assert cost.usd == pytest.approx(0.038099) and not cost.estimated


def test_dall_e_url_answers_keep_the_revised_prompt_and_price_flat():
    parsed = parse_images({"created": 1, "data": [{"revised_prompt": "A siamese cat ...", "url": "https://x/y.png"}]})
    assert parsed.items[0].url == "https://x/y.png" and parsed.items[0].revised_prompt == "A siamese cat ..."
    assert parsed.usage is None
    assert flat_cost(SPECS["dall-e-3"], "hd", "1024x1792", 1).usd == 0.12
    assert flat_cost(SPECS["dall-e-2"], None, "256x256", 2).usd == 0.032


@pytest.mark.parametrize("body", [
    b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgo!!"}]}',
    b'{"created": 1, "data": [{}]}',
    b'{"created": 1, "data": [{"b64_json": "iVBORw0KGgoAAA',
    b'[1, 2]',
])
def test_broken_bodies_raise_for_the_translator(body):
    with pytest.raises((ValueError, KeyError, TypeError)):
        parse_images(body)


def test_sse_events_in_order_with_done_and_comments():
    lines = [": keep-alive", "event: image_generation.partial_image",
             'data: {"type": "image_generation.partial_image", "partial_image_index": 0, "b64_json": "x"}', "",
             "event: image_generation.completed", 'data: {"b64_json": "y", "usage": {"output_tokens": 5}}', "",
             "data: [DONE]", "", 'data: {"never": "read"}', ""]
    events = list(read_sse(lines))
    assert [e.type for e in events] == ["image_generation.partial_image", "image_generation.completed"]
    assert events[1].data["usage"] == {"output_tokens": 5}


def headers(**values: str) -> httpx.Headers:
    return httpx.Headers({k.replace("_", "-"): v for k, v in values.items()})


def test_wait_hints_in_the_sdk_order():
    assert retry_hint(headers(retry_after_ms="1500", retry_after="9"), status=429) == 1.5
    assert retry_hint(headers(retry_after="3"), status=503) == 3.0
    assert retry_hint(headers(x_ratelimit_reset_requests="6m0s", x_ratelimit_reset_tokens="12ms"), status=429) == 360
    assert retry_hint(headers(), status=429, message="try again after 51.84 seconds.") == 51.84
    assert retry_hint(headers(), status=500) is None
    assert parse_duration("1h2m3.5s") == 3723.5


@functools.cache
def _provider() -> OpenAIProvider:
    return OpenAIProvider(instance_name="openai", settings=OpenAISettings(api_key="sk-test"), http=httpx.AsyncClient())


def error(status: int, code: str | None, type_: str = "invalid_request_error", param: str | None = None,
          **head: str):
    body = {"message": f"m {code}", "type": type_, "param": param, "code": code,
            "moderation_details": {"moderation_stage": "output", "categories": ["other"]}}
    reply = ErrorReply(status_code=status, headers=headers(x_request_id="req_1", **head), body={"error": body})
    return _provider().status_error(reply)


@pytest.mark.parametrize(("status", "code", "type_", "param", "cls", "retryable"), [
    (400, "moderation_blocked", "image_generation_user_error", None, ContentPolicyError, False),
    (400, "content_policy_violation", "invalid_request_error", None, ContentPolicyError, False),
    (429, "insufficient_quota", "insufficient_quota", None, InsufficientCreditsError, False),
    (429, "credit_balance_exhausted", "insufficient_quota", None, InsufficientCreditsError, False),
    (400, "billing_hard_limit_reached", "invalid_request_error", None, InsufficientCreditsError, False),
    (401, "invalid_api_key", "invalid_request_error", None, AuthenticationError, False),
    (403, None, "invalid_request_error", None, PermissionDeniedError, False),
    (404, "model_not_found", "invalid_request_error", None, NotFoundError, False),
    (409, None, "invalid_request_error", None, ProviderUnavailableError, True),
    (429, "rate_limit_exceeded", "requests", None, RateLimitError, True),
    (500, None, "server_error", None, ProviderUnavailableError, True),
    (503, "server_is_overloaded", "service_unavailable_error", None, ProviderUnavailableError, True),
    (400, "unsupported_file_mimetype", "invalid_request_error", "image[0]", ProviderInvalidImageError, False),
    (400, "invalid_value", "invalid_request_error", "url", ProviderInvalidImageError, False),
    (400, "unknown_parameter", "invalid_request_error", "response_format", ProviderInvalidRequestError, False),
])
def test_every_error_shape_maps_by_code_first(status, code, type_, param, cls, retryable):
    exc = error(status, code, type_, param)
    assert type(exc) is cls and exc.retryable is retryable
    assert exc.status_code == status and exc.request_id == "req_1"
    if cls is ContentPolicyError:
        assert exc.reason == code and "output stage" in exc.message


def test_x_should_retry_overrides_and_hints_ride_on_5xx():
    assert error(500, None, "server_error", x_should_retry="false").retryable is False
    assert error(400, "whatever", x_should_retry="true").retryable is False  # request errors are never retried
    assert error(503, None, "server_error", retry_after="2").retry_after == 2.0
    assert error(429, "rate_limit_exceeded", "requests", retry_after_ms="250").retry_after == 0.25
    # The SDK's order: retry-after-ms before the standard Retry-After the kit reads by default.
    assert error(429, "rate_limit_exceeded", "requests", retry_after_ms="250", retry_after="9").retry_after == 0.25
