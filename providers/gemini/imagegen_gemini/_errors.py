"""Reading Google's error envelope: ``{"error": {code, message, status, details: [google.rpc.*]}}``.

The status table (``GeminiProvider.status_errors``) names the class for each HTTP status;
this reader adds what Google's body says that the status alone does not: an invalid key
answered as 400, a missing key as 403, a region refusal (FAILED_PRECONDITION), prepaid
credits used up (a 429 that retrying will not cure), and the wait of ``RetryInfo``.
(DEADLINE_EXCEEDED is always HTTP 504: the table's entry.)
No SDK import: the envelope is plain JSON.
"""

from __future__ import annotations

import re
from typing import Any

from imagegen import (
    AuthenticationError,
    InsufficientCreditsError,
    PermissionDeniedError,
)
from imagegen.provider import ErrorDetails, ErrorReply, json_object, json_objects, parse_wait_hint

__all__ = ["error_message", "read_google_error"]

_RETRY_IN = re.compile(r"retry in (\d+(?:\.\d+)?)\s*s", re.IGNORECASE)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def error_message(text: str) -> str:
    """Google's message, or what an HTML page in its place is (a proxy's, a load balancer's)."""
    text = text.strip()
    if "<html" in text[:512].lower() or "<title" in text.lower():
        title = _TITLE.search(text)
        return f"an HTML page ({title.group(1).strip()!r})" if title else "an HTML page"
    return text[:600]


def _rpc(details: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next((d for d in details if str(d.get("@type", "")).endswith(kind)), {})


def read_google_error(reply: ErrorReply, *, replacement: str | None = None) -> ErrorDetails:
    """What one error answer says; ``replacement`` names the model that replaced a retired one."""
    body = json_object(reply.body)
    error = body["error"] if isinstance(body.get("error"), dict) else body
    message = error_message(str(error.get("message") or reply.text or ""))
    status = str(error.get("status") or "") or None
    details = json_objects(error.get("details"))
    read = ErrorDetails(message=message or None, code=status)
    code = reply.status_code
    if _rpc(details, "google.rpc.ErrorInfo").get("reason") == "API_KEY_INVALID" or "API key not valid" in message:
        read.error, read.advice = AuthenticationError, "check GEMINI_API_KEY or the configured api_key"
    elif code == 403 and "unregistered callers" in message:
        read.error, read.advice = AuthenticationError, "no API key was sent: set GEMINI_API_KEY or api_key"
    elif status == "FAILED_PRECONDITION":
        read.error = PermissionDeniedError
    elif code == 404:
        read.advice = (f"it was replaced by {replacement}" if replacement
                       else "check the model id with `imagegen providers`")
    elif code == 429 and ("prepayment" in message.lower() or "credits are depleted" in message.lower()):
        read.error = InsufficientCreditsError
        read.advice = "prepaid credits are used up: add credits in Google AI Studio billing; retrying will not help"
    elif code == 429:
        wait = parse_wait_hint(_rpc(details, "google.rpc.RetryInfo").get("retryDelay"))
        if wait is None and (match := _RETRY_IN.search(message)):
            wait = float(match.group(1))
        read.retry_after = wait
        read.advice = "quota exceeded; retry later" if wait is not None else "capacity exhausted; retry shortly"
    return read
