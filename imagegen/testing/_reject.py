"""`Reject`: how an emulator handler answers with an error in its vendor's envelope."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Reject"]


class Reject(Exception):
    """Raise from an emulator handler to answer with an API error.

    `status` is the HTTP status and `message` the vendor's human-readable text. `code` is the
    vendor's machine-readable error code where it has one (Google's ``"FAILED_PRECONDITION"``,
    a Stripe-style ``"stale_write"``); `fields` are extra members of the error body (Google's
    ``details``, Wireflow's ``requiredCredits`` ...) and `headers` extra response headers.
    The kit catches it and renders it with the emulator's `Emulator.reject_response`, so a
    handler never builds an error body itself::

        if not prompt:
            raise Reject(400, "prompt is required")
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"a Reject is an HTTP error status (4xx or 5xx), got {status!r}")
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.fields: dict[str, Any] = fields

    def __repr__(self) -> str:
        code = f", code={self.code!r}" if self.code else ""
        return f"Reject({self.status}, {self.message!r}{code})"
