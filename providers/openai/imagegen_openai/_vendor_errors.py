"""OpenAI error answers as imagegen errors: classified by ``error.code`` and ``error.type``
first, HTTP status second (spec section 9), with the server's wait hints (section 2, 10).

Wait hints, in the official SDK's order: ``retry-after-ms``, then ``retry-after`` (seconds or an
HTTP date), then, on a 429 only, the ``x-ratelimit-reset-requests``/``-tokens`` durations
(``"6m0s"``, ``"12ms"``; not seen on Images answers, but documented for the API) and the
"try again after 51.84 seconds" the 2025 message carried. ``x-should-retry: true|false``
overrides whether the error is retryable. Retryable, as the SDK: 408, 409, 429 (not quota) and
5xx. Quota and billing failures never are, whatever their status (429 or a 2023-era 400).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    ImageGenError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderInvalidImageError,
    ProviderInvalidRequestError,
    ProviderUnavailableError,
    RateLimitError,
)
from imagegen.provider import describe_body, parse_wait_hint

__all__ = ["error_from_body", "error_from_response", "rate_limit_headers", "retry_hint"]

REFUSAL_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
QUOTA_CODES = frozenset({"insufficient_quota", "credit_balance_exhausted", "billing_hard_limit_reached"})
IMAGE_CODES = frozenset({"invalid_image_file", "unsupported_file_mimetype", "invalid_image", "image_too_large"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_AFTER = re.compile(r"try again (?:after|in) (\d+(?:\.\d+)?) ?s", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """``"6m0s"`` -> 360.0, ``"12ms"`` -> 0.012, ``"1.5s"`` -> 1.5; None when unreadable."""
    if not text:
        return None
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.strip():
        return parse_wait_hint(text)
    return sum(float(n) * _UNITS[u] for n, u in parts)


def retry_hint(headers: httpx.Headers, *, status: int, message: str = "") -> float | None:
    """Seconds the server asks to wait, or None."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    hint = parse_wait_hint(headers.get("retry-after"))
    if hint is not None or status != 429:
        return hint
    resets = [parse_duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens", "images")]
    known = [r for r in resets if r is not None]
    if known:
        return max(known)
    match = _AFTER.search(message)
    return float(match.group(1)) if match else None


def rate_limit_headers(headers: httpx.Headers) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers of an answer (kept in result metadata and on 429 errors)."""
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}


def error_from_response(response: httpx.Response, *, provider: str, scrub: Any = str) -> ImageGenError:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        said = describe_body(response)
        body = {"error": {"message": said, "type": None, "code": None, "param": None}}
    return error_from_body(body["error"], status=response.status_code, headers=response.headers,
                           provider=provider, scrub=scrub)


def error_from_body(error: dict[str, Any], *, status: int, headers: httpx.Headers, provider: str,
                    scrub: Any = str) -> ImageGenError:
    """The typed error for one ``{"error": {...}}`` object (an HTTP answer or a stream's error event)."""
    code = str(error.get("code") or "").lower()
    kind = str(error.get("type") or "").lower()
    param = error.get("param")
    said = scrub(str(error.get("message") or "no message"))[:600]
    hint = retry_hint(headers, status=status, message=said)
    # The router honours the hint on any retryable error; x-should-retry overrides retryability.
    common: dict[str, Any] = {"provider": provider, "status_code": status, "request_id": headers.get("x-request-id"),
                              "body": {"error": error}, "code": code or None, "retry_after": hint}
    should = (headers.get("x-should-retry") or "").lower()
    if should in ("true", "false"):
        common["retryable"] = should == "true"
    return _classify(code, kind, param, said, status, hint, provider, common)


def _classify(code: str, kind: str, param: Any, said: str, status: int, hint: float | None, provider: str,
              common: dict[str, Any]) -> ImageGenError:
    name = provider
    if code in REFUSAL_CODES:
        details = (common["body"]["error"].get("moderation_details") or {}) if isinstance(
            common["body"]["error"].get("moderation_details"), dict) else {}
        stage = details.get("moderation_stage")
        where = f" at the {stage} stage" if stage else ""
        return ContentPolicyError(f"{name} refused the request{where}: {said}; rephrase the prompt or change the "
                                  "image", reason=code, provider_message=said, **common)
    if code in QUOTA_CODES or kind == "insufficient_quota":
        return InsufficientCreditsError(
            f"{name} has no quota or credit left ({code or kind}): {said}; add credit or raise the limit at "
            "platform.openai.com (settings, billing)", **common)
    if status == 401:
        return AuthenticationError(f"{name} rejected the API key: {said}; check OPENAI_API_KEY", **common)
    if status == 403:
        return PermissionDeniedError(f"{name} refused the call: {said}", **common)
    if code == "model_not_found" or status == 404:
        return NotFoundError(f"{name} does not know this model or path: {said}; check the model id and base_url",
                             **common)
    if status == 429:
        wait = f"wait {hint:g} s and retry" if hint is not None else "slow down and retry"
        return RateLimitError(f"{name} is rate limiting ({code or 'rate_limit_exceeded'}): {said}; {wait}",
                              **common)
    if status >= 500 or status in (408, 409):
        return ProviderUnavailableError(f"{name} is unavailable (HTTP {status}): {said}; retry later", **common)
    if status in (400, 413, 415, 422):
        image = code in IMAGE_CODES or param == "url" or (
            isinstance(param, str) and param.startswith(("image", "mask")))
        cls = ProviderInvalidImageError if image else ProviderInvalidRequestError
        # The same request is refused again, whatever x-should-retry says.
        return cls(f"{name} rejected the request (HTTP {status}, {code or kind or 'invalid'}"
                   f"{f', param {param}' if param else ''}): {said}", **{**common, "retryable": False})
    return ProviderError(f"{name} answered HTTP {status}: {said}", **{"retryable": False, **common})
