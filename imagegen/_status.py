"""From a vendor's error answer to an imagegen error: one table, one hook, one builder.

A provider declares ``status_errors``, a table from HTTP status to the error class (and
advice for the caller) that overrides ``DEFAULT_STATUS_ERRORS`` entry by entry, and may
override ``read_error`` to read its vendor's error body (message, code, wait hint, the
fields an error class takes, or a different class for a special case, such as a 400 that
is really a content-policy refusal). ``status_error`` combines the two; every provider,
HTTP or SDK-based, turns error answers into errors that way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from ._errors import (
    AuthenticationError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderInvalidRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
)
from ._http import describe_body, parse_wait_hint, retry_after_from_headers

__all__ = ["DEFAULT_STATUS_ERRORS", "ErrorDetails", "ErrorReply", "StatusRule", "build_status_error",
           "read_error_body"]


@dataclass(frozen=True)
class StatusRule:
    """The error class one HTTP status becomes, and what the caller can do about it."""

    error: type[ProviderError]
    advice: str = ""


#: What each status means when a provider's own table says nothing about it. Other 5xx
#: statuses are ``ProviderUnavailableError``; any other status is a non-retryable ``ProviderError``.
DEFAULT_STATUS_ERRORS: Mapping[int, StatusRule] = {
    400: StatusRule(ProviderInvalidRequestError, "check the prompt and options"),
    401: StatusRule(AuthenticationError, "check the API key"),
    402: StatusRule(InsufficientCreditsError, "add credits, or route to another provider"),
    403: StatusRule(PermissionDeniedError, "the key is not allowed to do this"),
    404: StatusRule(NotFoundError),
    408: StatusRule(ProviderTimeoutError, "retry"),
    413: StatusRule(ProviderInvalidRequestError, "the request is too large"),
    415: StatusRule(ProviderInvalidRequestError),
    422: StatusRule(ProviderInvalidRequestError, "check the prompt and options"),
    429: StatusRule(RateLimitError, "slow down and retry"),
    500: StatusRule(ProviderUnavailableError, "retry later"),
    502: StatusRule(ProviderUnavailableError, "retry later"),
    503: StatusRule(ProviderUnavailableError, "retry later"),
    504: StatusRule(ProviderTimeoutError, "retry later"),
}


@dataclass(frozen=True)
class ErrorReply:
    """A vendor's error answer, before translation."""

    status_code: int
    headers: httpx.Headers = field(default_factory=httpx.Headers)
    #: The parsed JSON body; None when the body is not JSON.
    body: Any = None
    #: A short, safe description of a body that is not JSON (an HTML page's title, a snippet).
    text: str = ""
    method: str = ""
    #: The path (or URL) the request went to.
    path: str = ""

    @classmethod
    def from_response(cls, response: httpx.Response) -> ErrorReply:
        try:
            body, text = response.json(), ""
        except (ValueError, UnicodeDecodeError):
            body, text = None, describe_body(response)
        return cls(status_code=response.status_code, headers=response.headers, body=body, text=text,
                   method=response.request.method, path=response.request.url.path)


@dataclass
class ErrorDetails:
    """What a vendor's error body says, as ``Provider.read_error`` reads it."""

    message: str | None = None
    #: The vendor's own error code (``"insufficient_credits"``, ``"INVALID_ARGUMENT"``...).
    code: str | None = None
    #: The vendor's wait hint as its reader found it (in the body, or in headers of its own such
    #: as ``retry-after-ms``); it wins over the standard ``Retry-After``/``X-RateLimit-Reset``
    #: headers, which the builder reads when the reader found none.
    retry_after: float | None = None
    #: Another class than the status table's, for an answer whose status misleads.
    error: type[ProviderError] | None = None
    #: Advice that replaces the status table's.
    advice: str | None = None
    #: More constructor arguments for the error class (``required``, ``available``, ``reason``...).
    fields: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def read_error_body(body: Any) -> ErrorDetails:
    """The common envelopes: ``{"error": {"message", "code"|"type"}}``, ``{"error": "..."}``,
    ``{"message": ...}`` and ``{"detail": ...}``, with ``retry_after``/``retryAfter`` anywhere."""
    if not isinstance(body, dict):
        return ErrorDetails()
    error = body.get("error")
    nested: dict[str, Any] = error if isinstance(error, dict) else {}
    message = _text(nested.get("message")) or _text(error) or _text(body.get("message")) or _text(body.get("detail"))
    code = nested.get("code") or nested.get("type") or body.get("code")
    hint = next((place[key] for place in (body, nested) for key in ("retry_after", "retryAfter") if key in place),
                None)
    return ErrorDetails(message=message, code=None if code is None else str(code), retry_after=parse_wait_hint(hint))


def _rule(table: Mapping[int, StatusRule], status: int) -> StatusRule:
    rule = table.get(status) or DEFAULT_STATUS_ERRORS.get(status)
    if rule is not None:
        return rule
    return StatusRule(ProviderUnavailableError, "retry later") if status >= 500 else StatusRule(ProviderError)


def build_status_error(provider: str, reply: ErrorReply, details: ErrorDetails, *,
                       table: Mapping[int, StatusRule], request_id: str | None = None) -> ProviderError:
    """The error for ``reply``: the class from ``details`` or the table, one readable message,
    and every field (status, request id, vendor code, body, wait hint) as a constructor argument."""
    status = reply.status_code
    rule = _rule(table, status)
    cls = details.error or rule.error
    said = details.message or details.code or reply.text or "no message"
    if details.code and details.message and details.code not in details.message:
        said = f"{said} [{details.code}]"
    wait = details.retry_after if details.retry_after is not None else retry_after_from_headers(reply.headers)
    advice = rule.advice if details.advice is None else details.advice
    if issubclass(cls, RateLimitError) and wait is not None and details.advice is None:
        advice = f"wait {wait:g} s and retry"
    message = f"{provider} answered HTTP {status}: {said}" + (f"; {advice}" if advice else "")
    return cls(message, provider=provider, status_code=status, request_id=request_id, code=details.code,
               body=reply.body if reply.body is not None else reply.text or None, retry_after=wait,
               **details.fields)
