"""The one exception tree of imagegen.

Every failure a caller can see is an ``ImageGenError``; vendor, transport and
parsing exceptions are translated at each provider's single choke point and
raised ``from`` the original. An exception nobody translated (a ``KeyError`` in a
provider's own code) is a bug: it propagates as it is, with its traceback.

Every field an error carries is a constructor argument.

    ImageGenError
    ├── ConfigurationError
    │   ├── MissingCredentialsError
    │   └── UnknownProviderError
    ├── InvalidRequestError
    │   ├── InvalidImageError
    │   ├── IdempotencyConflictError
    │   └── UnsupportedFeatureError
    ├── BudgetExceededError
    ├── JobNotFoundError
    ├── ProviderError
    │   ├── ProviderInvalidRequestError   (also an InvalidRequestError)
    │   │   └── ProviderInvalidImageError (also an InvalidImageError)
    │   ├── AuthenticationError
    │   ├── PermissionDeniedError
    │   ├── NotFoundError
    │   ├── RateLimitError
    │   ├── InsufficientCreditsError
    │   ├── ContentPolicyError
    │   ├── NoImageReturnedError
    │   ├── InvalidResponseError
    │   ├── ProviderUnavailableError
    │   │   └── ProviderTimeoutError
    │   ├── JobFailedError
    │   ├── JobTimeoutError
    │   └── OutputUnavailableError
    │       └── AnswerLostError
    ├── StorageError
    └── AllProvidersFailedError
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ._models import Attempt

__all__ = [
    "AllProvidersFailedError",
    "AnswerLostError",
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContentPolicyError",
    "IdempotencyConflictError",
    "ImageGenError",
    "InsufficientCreditsError",
    "InvalidImageError",
    "InvalidRequestError",
    "InvalidResponseError",
    "JobFailedError",
    "JobNotFoundError",
    "JobTimeoutError",
    "MissingCredentialsError",
    "NoImageReturnedError",
    "NotFoundError",
    "OutputUnavailableError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderInvalidImageError",
    "ProviderInvalidRequestError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "StorageError",
    "UnknownProviderError",
    "UnsupportedFeatureError",
]


class ImageGenError(Exception):
    """Base class of every error imagegen raises."""

    #: Whether trying the same call again may succeed.
    retryable: bool = False
    #: When this error ended a route: every provider tried before it, in order.
    attempts: list[Attempt]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts = []

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI prints for this error."""
        return {
            "type": type(self).__name__,
            "message": self.message,
            "provider": None,
            "status_code": None,
            "retryable": self.retryable,
            "retry_after": None,
        }


class ConfigurationError(ImageGenError):
    """The configuration is incomplete or wrong (file, environment or arguments)."""


class MissingCredentialsError(ConfigurationError):
    """A provider needs a secret that is not set; the message names the variable."""


class UnknownProviderError(ConfigurationError):
    """No configured provider, plugin, model or route has the given name."""


class InvalidRequestError(ImageGenError):
    """The request cannot be sent as given (empty prompt, bad option, ...)."""


class InvalidImageError(InvalidRequestError):
    """An input image is missing, empty, truncated, too large or not an image."""


class IdempotencyConflictError(InvalidRequestError):
    """An idempotency key was reused with different request parameters; nothing was sent.

    As with Stripe's keys, one key names one request: use a new key for a new request.
    """

    def __init__(self, message: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class UnsupportedFeatureError(InvalidRequestError):
    """The chosen provider or model cannot honour a setting; says what it supports."""


class BudgetExceededError(ImageGenError):
    """The estimated cost would cross a configured budget; nothing was sent."""

    def __init__(self, message: str, *, limit_usd: float | None = None,
                 spent_usd: float | None = None, estimate_usd: float | None = None) -> None:
        super().__init__(message)
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.estimate_usd = estimate_usd


class JobNotFoundError(ImageGenError):
    """No job with this id is known to the job store or the provider."""


class ProviderError(ImageGenError):
    """A provider answered with an error, or could not be reached.

    ``code`` is the vendor's own error code, ``body`` its error body (parsed JSON, or a
    description of a body that was not JSON), ``retry_after`` the server's wait hint in
    seconds, which retries honour whatever the error's class.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        body: Any = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.code = code
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "provider": self.provider, "status_code": self.status_code,
                "retry_after": self.retry_after}

    def __str__(self) -> str:
        where = [f"provider={self.provider}"] if self.provider else []
        if self.status_code is not None:
            where.append(f"status={self.status_code}")
        if self.request_id:
            where.append(f"request_id={self.request_id}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class ProviderInvalidRequestError(ProviderError, InvalidRequestError):
    """The provider refused the request as invalid (HTTP 400/422), e.g. a ratio this model lacks."""


class ProviderInvalidImageError(ProviderInvalidRequestError, InvalidImageError):
    """The provider refused an input image (too large, wrong type, unreadable)."""


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (missing, malformed, invalid or expired key)."""


class PermissionDeniedError(ProviderError):
    """The credentials are valid but not allowed to do this."""


class NotFoundError(ProviderError):
    """The provider does not know the model, workflow or job asked for."""


class RateLimitError(ProviderError):
    """Too many requests; ``retry_after`` holds the server's wait hint in seconds, if any."""

    retryable = True


class InsufficientCreditsError(ProviderError):
    """The account has too few credits or prepaid funds; retrying will not help."""

    def __init__(self, message: str, *, required: float | None = None,
                 available: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.required = required
        self.available = available


class ContentPolicyError(ProviderError):
    """The provider refused the prompt or the image; ``reason`` is its own code."""

    def __init__(self, message: str, *, reason: str | None = None,
                 provider_message: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason
        self.provider_message = provider_message


class NoImageReturnedError(ProviderError):
    """The call succeeded but the answer holds no image (text only, ``NO_IMAGE``, ...)."""

    def __init__(self, message: str, *, text: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.text = text


class InvalidResponseError(ProviderError):
    """The provider answered something unreadable: HTML, truncated JSON or base64, missing fields."""

    retryable = True


class ProviderUnavailableError(ProviderError):
    """The provider is down, overloaded or unreachable (5xx, connection errors)."""

    retryable = True


class ProviderTimeoutError(ProviderUnavailableError):
    """The provider did not answer within the timeout."""


class JobFailedError(ProviderError):
    """An asynchronous job ended in failure; the message carries the provider's error text."""


class JobTimeoutError(ProviderError):
    """A job did not finish before the caller's deadline; it may still finish later."""

    def __init__(self, message: str, *, job_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job_id = job_id


class OutputUnavailableError(ProviderError):
    """The provider finished (and billed) the job, but its images could not be fetched or decoded.

    Never retried by submitting again, never a reason to pay another provider (unless a route
    lists it in ``fallback_on``): ``wait(job_id)`` fetches the outputs again later without paying.
    ``urls`` are the output URLs the provider gave, if any.
    """

    def __init__(self, message: str, *, job_id: str | None = None, urls: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.job_id = job_id
        self.urls = list(urls or [])

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "job_id": self.job_id, "urls": self.urls}


class AnswerLostError(OutputUnavailableError):
    """The provider answered 2xx -- so it billed the call -- but the answer was lost before it
    could be read (the connection cut mid-body, a read timeout, a body that cannot be read).

    Never sent again by imagegen, nor moved to another provider (unless a route lists this error
    or ``OutputUnavailableError`` in ``fallback_on``): the charge is in the ledger at its estimate
    under ``job_id``, and the vendor keeps no copy to fetch. Sending the request again is a new,
    paid call. ``request_id`` is the vendor's id for the lost answer, when its headers gave one.
    """


class StorageError(ImageGenError):
    """The job store, ledger, charge journal or a result file could not be read or written.

    Raised only before anything is paid for; after a paid call the result is returned with a
    warning naming the fault instead. ``store`` says which store failed.
    """

    def __init__(self, message: str, *, store: str | None = None) -> None:
        super().__init__(message)
        self.store = store

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "store": self.store}


class AllProvidersFailedError(ImageGenError):
    """Every provider of a route failed or was skipped; ``attempts`` says why, in order."""

    def __init__(self, message: str, *, attempts: list[Attempt], pending_job_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        #: Jobs a provider accepted and that may still finish: ``wait()`` on them before retrying.
        self.pending_job_ids = pending_job_ids or []

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return any(a.retryable for a in self.attempts)
