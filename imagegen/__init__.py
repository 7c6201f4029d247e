"""imagegen: one interface (generate, edit, status) over many image-generation services.

    from imagegen import Client
    res = Client().generate("a coastal villa at golden hour", provider="gemini")
    res.images[0].save("villa.png")

Importing this package is cheap: plugins, provider SDKs, Pillow, the emulator kit
and the CLI load on first use.
"""

from ._capabilities import ModelSpec, Price
from ._client import AsyncClient
from ._config import Config, load_config
from ._errors import (
    AllProvidersFailedError,
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
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StorageError,
    UnknownProviderError,
    UnsupportedFeatureError,
)
from ._models import Attempt, Cost, Image, ImageRequest, ImageResult, InputImage, Job, JobStatus, Usage
from ._options import ImageInput, ImageOptions, RequestOptions
from ._plugins import hookimpl
from ._provider import AdaptivePollSchedule, PollSchedule, Provider, ProviderSettings
from ._sessions import AsyncSession, Session, SessionTurn
from ._streaming import PartialImage
from ._sync import Client
from ._vendor_batch import BatchEstimate, BatchJob, BatchMember, BatchResult
from ._version import __version__ as __version__

__all__ = [
    "AdaptivePollSchedule",
    "AllProvidersFailedError",
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
    "PollSchedule",
    "Price",
    "Provider",
    "ProviderError",
    "ProviderSettings",
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
    "hookimpl",
    "load_config",
]

# Public objects report the public module, not the private one they live in.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("imagegen._"):
        try:
            _obj.__module__ = "imagegen"
        except (AttributeError, TypeError):
            pass
del _name, _obj
