"""Authentication for emulators: reading a request's API key, and deciding whether it is good.

Vendors differ in where the key travels (``Authorization: Bearer``, ``x-goog-api-key``,
``?key=``) and in how they word each failure, but not in the failures themselves: no key, a
malformed one, an unknown one, an expired one. `read_bearer`/`read_header` find the key;
`ApiKeys.verify` names the failure; the emulator words it in its vendor's envelope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from starlette.requests import HTTPConnection

__all__ = ["ApiKeys", "Credential", "read_bearer", "read_header"]

Problem = Literal["missing", "malformed", "unknown", "expired"]


@dataclass(frozen=True)
class Credential:
    """The key a request carried, and what is wrong with it (``None``: nothing)."""

    key: str | None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def read_bearer(request: HTTPConnection, *, header: str = "authorization") -> Credential:
    """The key from ``Authorization: Bearer <key>``: missing, malformed (another scheme, an
    empty or whitespace-bearing token), or found."""
    value = request.headers.get(header)
    if value is None or not value.strip():
        return Credential(None, "missing")
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(ch.isspace() for ch in token):
        return Credential(None, "malformed")
    return Credential(token)


def read_header(request: HTTPConnection, header: str, *, query: str | None = None) -> Credential:
    """The key from a plain header (e.g. ``x-goog-api-key``), else from the query parameter
    `query` (e.g. ``?key=``) when given."""
    key = request.headers.get(header) or (request.query_params.get(query) if query else None)
    if not key:
        return Credential(None, "missing")
    return Credential(key)


class ApiKeys:
    """The API keys an emulator accepts, each with an optional record of account facts.

    - ``ApiKeys()`` accepts any non-empty key, so tests need no set-up (the default);
    - ``ApiKeys(["k1", "k2"])`` accepts only those keys;
    - ``ApiKeys({"k1": {"credits": 5}})`` accepts only those keys and keeps a record for each,
      which an emulator may read (balances, plans, scopes);
    - `expired` keys are known but refused as expired; `revoked` keys are refused as unknown
      even when every key is accepted.
    """

    def __init__(
        self,
        keys: Iterable[str] | Mapping[str, Mapping[str, Any]] | None = None,
        *,
        expired: Iterable[str] = (),
        revoked: Iterable[str] = (),
    ) -> None:
        if isinstance(keys, str):
            raise TypeError("ApiKeys takes a collection of keys, not one string; use ApiKeys([key])")
        self._records: dict[str, dict[str, Any]] | None
        if keys is None:
            self._records = None
        elif isinstance(keys, Mapping):
            self._records = {str(k): dict(v or {}) for k, v in keys.items()}
        else:
            self._records = {str(k): {} for k in keys}
        self.expired = frozenset(expired)
        self.revoked = frozenset(revoked)

    @classmethod
    def of(cls, value: ApiKeys | Iterable[str] | Mapping[str, Mapping[str, Any]] | str | None) -> ApiKeys:
        """Coerce an emulator's ``api_keys`` option: an `ApiKeys`, a collection, a mapping,
        a comma-separated string (from ``imagegen emulate --option``), or ``None`` (any key)."""
        if isinstance(value, ApiKeys):
            return value
        if isinstance(value, str):
            return cls([key.strip() for key in value.split(",") if key.strip()])
        return cls(value)

    def extended(self, *, expired: Iterable[str] = (), revoked: Iterable[str] = ()) -> ApiKeys:
        """A copy that also refuses `expired` and `revoked` keys."""
        copy = ApiKeys(self._records, expired={*self.expired, *expired}, revoked={*self.revoked, *revoked})
        return copy

    @property
    def restricted(self) -> bool:
        """Whether only listed keys are accepted."""
        return self._records is not None

    def verify(self, credential: Credential) -> Credential:
        """`credential` with its problem filled in: unknown, expired, or none."""
        if credential.problem is not None or credential.key is None:
            return credential if credential.problem else replace(credential, problem="missing")
        key = credential.key
        if key in self.revoked or (self._records is not None and key not in self._records):
            return replace(credential, problem="unknown")
        if key in self.expired or self.record(key).get("expired"):
            return replace(credential, problem="expired")
        return credential

    def record(self, key: str) -> dict[str, Any]:
        """The account facts kept for `key` (empty when there are none)."""
        if self._records is None:
            return {}
        return self._records.get(key, {})

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.verify(Credential(key)).ok

    def __repr__(self) -> str:
        keys = "any key" if self._records is None else f"{len(self._records)} keys"
        return f"<ApiKeys {keys}, {len(self.expired)} expired, {len(self.revoked)} revoked>"
