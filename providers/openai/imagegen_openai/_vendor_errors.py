"""OpenAI error answers, read for the kit's status table: ``error.code`` and ``error.type`` pick
the class first (a quota failure, a refusal, an unreadable image), the HTTP status second
(``STATUS_ERRORS``), with the server's wait hints.

Wait hints, in the official SDK's order: ``retry-after-ms``, then ``retry-after`` (seconds or an
HTTP date), then, on a 429 only, the ``x-ratelimit-reset-requests``/``-tokens`` durations
(``"6m0s"``, ``"12ms"``; not seen on Images answers, but documented for the API) and the
"try again after 51.84 seconds" the 2025 message carried. ``x-should-retry: true|false``
overrides whether the error is retryable. Retryable, as the SDK: 408, 409, 429 (not quota) and
5xx. Quota and billing failures never are, whatever their status (429 or a 2023-era 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx

from imagegen import (
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    ProviderInvalidImageError,
    ProviderUnavailableError,
)
from imagegen.provider import ErrorDetails, ErrorReply, StatusRule, parse_wait_hint

__all__ = ["STATUS_ERRORS", "rate_limit_headers", "read_openai_error", "retry_hint"]

#: Over the kit's defaults (400/413/415/422 are request errors, 429 a rate limit, 5xx unavailable).
STATUS_ERRORS: dict[int, StatusRule] = {
    401: StatusRule(AuthenticationError, "check OPENAI_API_KEY"),
    403: StatusRule(PermissionDeniedError, "the key (or its organisation/project) may not do this"),
    404: StatusRule(NotFoundError, "check the model id and base_url"),
    409: StatusRule(ProviderUnavailableError, "retry later"),  # retried by OpenAI's own SDK
}

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


def read_openai_error(reply: ErrorReply, *, scrub: Callable[[str], str] = str) -> ErrorDetails:
    """What one ``{"error": {...}}`` answer (an HTTP error or a stream's error event) says."""
    error: dict[str, Any] = {}
    if isinstance(reply.body, dict) and isinstance(reply.body.get("error"), dict):
        error = reply.body["error"]
    code = str(error.get("code") or "").lower()
    kind = str(error.get("type") or "").lower()
    param = error.get("param")
    said = scrub(str(error.get("message") or reply.text or "no message"))[:600]
    details = ErrorDetails(message=said, code=code or None,
                           retry_after=retry_hint(reply.headers, status=reply.status_code, message=said))
    should = (reply.headers.get("x-should-retry") or "").lower()
    if should in ("true", "false"):
        details.fields["retryable"] = should == "true"
    if code in REFUSAL_CODES:
        moderation = error.get("moderation_details")
        stage = moderation.get("moderation_stage") if isinstance(moderation, dict) else None
        details.message = f"refused at the {stage} stage: {said}" if stage else f"refused: {said}"
        details.error, details.advice = ContentPolicyError, "rephrase the prompt or change the image"
        details.fields.update(reason=code, provider_message=said)
    elif code in QUOTA_CODES or kind == "insufficient_quota":
        details.error = InsufficientCreditsError
        details.advice = "add credit or raise the limit at platform.openai.com (settings, billing)"
    elif code == "model_not_found":
        details.error = NotFoundError
    elif reply.status_code in (400, 413, 415, 422):
        if code in IMAGE_CODES or param == "url" or (isinstance(param, str) and param.startswith(("image", "mask"))):
            details.error = ProviderInvalidImageError
        if param:
            details.message = f"{said} (param {param})"
        details.fields["retryable"] = False  # the same request is refused again, whatever x-should-retry says
    if details.error in (ContentPolicyError, InsufficientCreditsError, NotFoundError):
        details.fields["retryable"] = False
    return details
