"""imagegen: one interface (generate, edit, status) over many image-generation services.

    from imagegen import Client
    res = Client().generate("a coastal villa at golden hour", provider="gemini")
    res.images[0].save("villa.png")

``import imagegen`` itself loads nothing else: a public name loads with its module on first
use, so the ``imagegen`` command starts without importing the client, and plugins, provider
SDKs, Pillow, the emulator kit and the CLI load only when they are used; every pydantic model
is ``defer_build``, so its validator is built on first use. ``Client`` is a facade whose
module loads only itself: the client behind it (asyncio, httpx, pydantic's models) loads on
the first ``Client()`` (see ``imagegen._sync``; the cost of both steps is in
benchmarks/results/import_time.md). A new public name goes in the ``TYPE_CHECKING`` imports
(for type checkers) and in ``__all__``; in ``_HOMES`` too unless it is an error.

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

#: Where the public names that are not errors live; every other one (an error) is in ``_errors``.
#: A name loads with its module (and what that module imports), on first use.
_HOMES = {
    "AsyncClient": "._client", "AsyncSession": "._sessions", "Attempt": "._models",
    "BatchEstimate": "._vendor_batch", "BatchJob": "._vendor_batch", "BatchMember": "._vendor_batch",
    "BatchResult": "._vendor_batch", "Client": "._sync", "Config": "._config", "Cost": "._models",
    "Image": "._models", "ImageInput": "._options", "ImageOptions": "._options", "ImageRequest": "._models",
    "ImageResult": "._models", "InputImage": "._models", "Job": "._models", "JobStatus": "._models",
    "ModelSpec": "._capabilities", "PartialImage": "._streaming", "Price": "._capabilities",
    "RequestOptions": "._options", "Session": "._sessions", "SessionTurn": "._sessions", "Usage": "._models",
    "load_config": "._config",
}
#: Names of the provider kit that ``imagegen`` exported before ``imagegen.provider`` existed.
_MOVED_TO_PROVIDER = frozenset({"AdaptivePollSchedule", "PollSchedule", "Provider", "ProviderSettings", "hookimpl"})


def _home(name: str) -> str:
    return _HOMES.get(name, "._errors")


def _load(name: str) -> None:
    """Import the module ``name`` lives in, then publish every public name already loaded."""
    import gc
    import importlib

    # What an import makes (modules, classes, tables) lives as long as the process: the
    # collector's passes while it runs walk it all for nothing (~10% of the import).
    collecting = gc.isenabled()
    gc.disable()
    try:
        importlib.import_module(_home(name), __name__)
    finally:
        if collecting:
            gc.enable()
    _publish_loaded()


def _publish_loaded() -> None:
    """Bind the public names of every home module already imported (by ``_load`` or by the
    modules it imported, such as the client's on a first ``Client()``), so that they claim
    ``imagegen`` as their module (tracebacks, reprs) from the moment they exist."""
    import sys

    for name in __all__:
        module = sys.modules.get(__name__ + _home(name))
        if module is None or name in globals():
            continue
        obj = getattr(module, name, None)
        if obj is None:  # its module is still being imported
            continue
        # A name the provider kit exports too (``ModelSpec``) claims ``imagegen`` whichever loaded first.
        if getattr(obj, "__module__", "").startswith(("imagegen._", "imagegen.provider")):
            try:
                obj.__module__ = "imagegen"
            except (AttributeError, TypeError):
                pass
        globals()[name] = obj


def __getattr__(name: str) -> typing.Any:
    if name in __all__:
        _load(name)
        return globals()[name]
    if name in _MOVED_TO_PROVIDER:
        import warnings

        from . import provider

        warnings.warn(f"imagegen.{name} moved to imagegen.provider.{name}", DeprecationWarning, stacklevel=2)
        return getattr(provider, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
