"""imagegen: one interface (generate, edit, status) over many image-generation services.

    from imagegen import Client
    res = Client().generate("a coastal villa at golden hour", provider="gemini")
    res.images[0].save("villa.png")

``import imagegen`` itself loads nothing else: the public names below load together on first
use (``from imagegen import Client`` loads them all), so the ``imagegen`` command starts
without importing the client, and plugins, provider SDKs, Pillow, the emulator kit and the
CLI load only when they are used; every pydantic model is ``defer_build``, so its validator
is built on first use (benchmarks/import_time.py). A new public name goes in the
``TYPE_CHECKING`` imports (for type checkers) and in ``__all__``; its module in ``_MODULES``
if it is a new one.

Provider plugins are written with ``imagegen.provider``; emulators and the contract suite
live in ``imagegen.testing``.
"""

import typing

from ._version import __version__ as __version__

if typing.TYPE_CHECKING:
    from ._capabilities import ModelSpec, Price
    from ._client import AsyncClient
    from ._config import Config, load_config
    from ._errors import (
        AllProvidersFailedError,
        AnswerLostError,
        AuthenticationError,
        BudgetExceededError,
        ConfigurationError,
        ContentPolicyError,
        IdempotencyConflictError,
        ImageGenError,
        InsufficientCreditsError,
        InvalidImageError,
        InvalidRequestError,
        InvalidResponseError,
        JobFailedError,
        JobNotFoundError,
        JobTimeoutError,
        MissingCredentialsError,
        NoImageReturnedError,
        NotFoundError,
        OutputUnavailableError,
        PermissionDeniedError,
        ProviderError,
        ProviderInvalidImageError,
        ProviderInvalidRequestError,
        ProviderTimeoutError,
        ProviderUnavailableError,
        RateLimitError,
        StorageError,
        UnknownProviderError,
        UnsupportedFeatureError,
    )
    from ._models import Attempt, Cost, Image, ImageRequest, ImageResult, InputImage, Job, JobStatus, Usage
    from ._options import ImageInput, ImageOptions, RequestOptions
    from ._sessions import AsyncSession, Session, SessionTurn
    from ._streaming import PartialImage
    from ._sync import Client
    from ._vendor_batch import BatchEstimate, BatchJob, BatchMember, BatchResult

__all__ = [
    "AllProvidersFailedError",
    "AnswerLostError",
    "AsyncClient",
    "AsyncSession",
    "Attempt",
    "AuthenticationError",
    "BatchEstimate",
    "BatchJob",
    "BatchMember",
    "BatchResult",
    "BudgetExceededError",
    "Client",
    "Config",
    "ConfigurationError",
    "ContentPolicyError",
    "Cost",
    "IdempotencyConflictError",
    "Image",
    "ImageGenError",
    "ImageInput",
    "ImageOptions",
    "ImageRequest",
    "ImageResult",
    "InputImage",
    "InsufficientCreditsError",
    "InvalidImageError",
    "InvalidRequestError",
    "InvalidResponseError",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "JobStatus",
    "JobTimeoutError",
    "MissingCredentialsError",
    "ModelSpec",
    "NoImageReturnedError",
    "NotFoundError",
    "OutputUnavailableError",
    "PartialImage",
    "PermissionDeniedError",
    "Price",
    "ProviderError",
    "ProviderInvalidImageError",
    "ProviderInvalidRequestError",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestOptions",
    "Session",
    "SessionTurn",
    "StorageError",
    "UnknownProviderError",
    "UnsupportedFeatureError",
    "Usage",
    "load_config",
]

#: The private modules the public names live in (imported together, on first use).
_MODULES = ("._capabilities", "._client", "._config", "._errors", "._models", "._options", "._sessions",
            "._streaming", "._sync", "._vendor_batch")
#: Names of the provider kit that ``imagegen`` exported before ``imagegen.provider`` existed.
_MOVED_TO_PROVIDER = frozenset({"AdaptivePollSchedule", "PollSchedule", "Provider", "ProviderSettings", "hookimpl"})


def _load_public() -> None:
    import gc
    import importlib

    # What these imports make (modules, classes, tables) lives as long as the process: the
    # collector's passes while they run walk it all for nothing (~10% of the import).
    collecting = gc.isenabled()
    gc.disable()
    try:
        modules = [importlib.import_module(name, __name__) for name in _MODULES]
    finally:
        if collecting:
            gc.enable()
    for name in __all__:
        obj = next(getattr(m, name) for m in modules if hasattr(m, name))
        # Public objects report the public module, not the private one they live in.
        if getattr(obj, "__module__", "").startswith("imagegen._"):
            try:
                obj.__module__ = "imagegen"
            except (AttributeError, TypeError):
                pass
        globals()[name] = obj


def __getattr__(name: str) -> typing.Any:
    if name in __all__:
        _load_public()
        return globals()[name]
    if name in _MOVED_TO_PROVIDER:
        import warnings

        from . import provider

        warnings.warn(f"imagegen.{name} moved to imagegen.provider.{name}", DeprecationWarning, stacklevel=2)
        return getattr(provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
