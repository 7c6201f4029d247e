"""Property tests: the response parsers of all three providers, fed anything JSON can hold
(and arbitrary bytes), either read it or raise what their provider turns into a typed error.

The parsers are pure (no I/O), so hypothesis can throw thousands of shapes at them quickly.
Each test builds its provider once (an httpx client's TLS context costs tens of milliseconds,
which times 300 examples was most of these tests' time).
"""

from __future__ import annotations

import functools

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagegen import ImageGenError, InvalidResponseError
from imagegen.provider import parsing

KEYS = st.sampled_from([
    # Every field name the three parsers look for, so the fuzz reaches deep into them.
    "candidates", "content", "parts", "inlineData", "mimeType", "data", "text", "thought", "thoughtSignature",
    "finishReason", "finishMessage", "promptFeedback", "blockReason", "usageMetadata", "promptTokenCount",
    "candidatesTokenCount", "candidatesTokensDetails", "modality", "tokenCount", "responseId",
    "id", "job_id", "status", "outputs", "url", "image_url", "width", "height", "created_at", "credits_used",
    "processing_time_ms", "error", "message", "code", "retry_after", "balance",
    "executionRuns", "executionId", "nodeStates", "nodeResults", "nodeRuns", "nodeId", "output", "outputUrls",
    "outputUrl", "finalOutput", "images", "urls", "creditsUsed", "progress", "retryAfter", "type",
])
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64) | st.floats()
           | st.text(max_size=20) | st.sampled_from(["COMPLETED", "completed", "FAILED", "image/png", "IMAGE",
                                                    "https://cdn.example/x.png", "data:,", "STOP", "SAFETY"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
                    max_leaves=30)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def _gemini_spec():
    from imagegen_gemini._provider import GeminiProvider

    return GeminiProvider.models()[0]


@FUZZ
@example(body={"candidates": [{"finishMessage": True}]})  # found: AttributeError on a non-text message
@given(body=JSON)
def test_gemini_read_answer_raises_only_typed_errors(body):
    from imagegen_gemini import _wire

    spec = _gemini_spec()
    try:
        with parsing("gemini", "fuzzed answer"):  # as the provider reads every answer
            data = _wire.parse_body(__import__("json").dumps(body))
            _wire.read_answer(data, spec, provider="gemini")
    except ImageGenError:
        pass
    _wire.usage_of(body)  # never raises


@FUZZ
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_gemini_parse_body_raises_only_what_the_provider_translates(raw):
    from imagegen_gemini import _wire

    try:
        with parsing("gemini", "fuzzed body"):
            _wire.parse_body(raw)
    except InvalidResponseError:
        pass


@functools.cache
def _nb2_provider():
    from imagegen_nanobanana2._provider import NanoBanana2Provider

    return NanoBanana2Provider(instance_name="nb2", settings=NanoBanana2Provider.Settings(api_key="k"),
                               http=httpx.AsyncClient())


@FUZZ
@given(body=JSON)
def test_nb2_parsers_raise_only_what_the_provider_translates(body):
    from imagegen_nanobanana2 import _wire

    provider = _nb2_provider()
    for parse in (_wire.parse_generation, _wire.parse_balance):
        try:
            with provider.parsing("fuzzed answer"):  # as the provider reads every answer
                parse(body)
        except InvalidResponseError:
            pass
    _wire.parse_error_body(body)  # never raises


@FUZZ
@given(raw=st.binary(max_size=300))
def test_nb2_salvaged_job_ids_are_clean_or_absent(raw):
    from imagegen_nanobanana2._wire import salvage_job_id

    found = salvage_job_id(raw)
    assert found is None or (0 < len(found) <= 200 and found.replace("_", "").replace("-", "").replace(".", "")
                             .replace(":", "").isalnum() and found.isascii())


@functools.cache
def _wireflow_provider():
    from imagegen_wireflow import WireflowProvider, WireflowSettings

    return WireflowProvider(instance_name="wireflow", http=httpx.AsyncClient(),
                            settings=WireflowSettings(api_key="k", persist_workflows=False))


@FUZZ
@example(body={"executionRuns": ["not an object"]}, status=200, headers={})  # found: AttributeError
@example(body={"status": "COMPLETED", "executionRuns": [{"nodeRuns": 5}]}, status=200, headers={})  # TypeError
@given(body=JSON, status=st.integers(min_value=100, max_value=599),
       headers=st.dictionaries(st.sampled_from(["retry-after", "x-ratelimit-reset", "x-request-id"]),
                               st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12), max_size=3))
def test_wireflow_parsers_raise_only_typed_errors(body, status, headers):
    from imagegen.provider import ErrorReply
    from imagegen_wireflow._protocol import execution_id_from, parse_poll

    provider = _wireflow_provider()
    for parse in (parse_poll, execution_id_from):
        try:
            with provider.parsing("fuzzed answer"):
                parse(body)
        except ImageGenError:
            pass
    assert isinstance(provider.status_error(ErrorReply(status, httpx.Headers(headers), body)), ImageGenError)
