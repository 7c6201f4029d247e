"""Reading the generation object tolerantly: the guide's example, camelCase, envelopes, junk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imagegen_nanobanana2._wire import parse_balance, parse_error_body, parse_generation

GUIDE_EXAMPLE = {
    "id": "gen_abc123xyz", "status": "completed", "created_at": "2025-11-12T10:30:00Z",
    "outputs": [{"url": "https://cdn.nano-banana2.com/outputs/abc123.png", "width": 1920, "height": 1080}],
    "credits_used": 4, "processing_time_ms": 2150,
}


def test_the_guides_example():
    gen = parse_generation(GUIDE_EXAMPLE)
    assert (gen.id, gen.status, gen.credits_used, gen.processing_time_ms) == ("gen_abc123xyz", "succeeded", 4, 2150)
    assert gen.created_at == datetime(2025, 11, 12, 10, 30, tzinfo=UTC)
    assert gen.outputs[0].width == 1920


def test_camel_case_unknown_fields_and_envelope():
    gen = parse_generation({"data": {"id": 7, "status": "COMPLETED", "createdAt": "2025-11-12T10:30:00",
                                     "outputs": ["https://cdn/x.png"], "creditsUsed": "4",
                                     "processingTimeMs": 12.5, "novel": {"a": 1}}})
    assert (gen.id, gen.status, gen.credits_used, gen.processing_time_ms) == ("7", "succeeded", 4, 12.5)
    assert gen.outputs[0].url == "https://cdn/x.png" and gen.created_at.tzinfo is not None


@pytest.mark.parametrize(("raw", "mapped"), [("pending", "queued"), ("processing", "running"),
                                             ("failed", "failed"), ("canceled", "cancelled"), ("later", None)])
def test_status_values(raw, mapped):
    assert parse_generation({"id": "g", "status": raw}).status == mapped


def test_failure_reason_in_several_places():
    assert parse_generation({"id": "g", "status": "failed", "error": {"message": "m", "code": "c"}}).error == "m"
    assert parse_generation({"id": "g", "status": "failed", "failure_reason": "why"}).error == "why"


@pytest.mark.parametrize("body", [[], {"status": "completed"}, {"id": "g"}, {"id": "g", "status": ""},
                                  {"id": "g", "status": "completed", "outputs": {"url": "x"}},
                                  {"id": "g", "status": "completed", "outputs": [{"width": 1}]}])
def test_unreadable_bodies_raise_for_translate_error(body):
    with pytest.raises((KeyError, TypeError)):
        parse_generation(body)


def test_error_bodies_and_balance():
    assert parse_error_body({"error": "Insufficient credits"}).message == "Insufficient credits"
    assert parse_error_body({"message": "m", "retryAfter": 3}).retry_after == 3
    assert parse_error_body({"error": {"message": "x", "code": "rate", "retry_after": 2}}).retry_after == 2
    assert parse_error_body("oops").message == "oops"
    assert parse_balance({"balance": 12}) == 12 and parse_balance({"data": {"credits": "3.5"}}) == 3.5
    with pytest.raises(KeyError):
        parse_balance({"balance": None})
