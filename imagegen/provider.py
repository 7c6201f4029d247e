"""The provider kit: everything a provider plugin is written with, built-in or third-party.

A plugin is a package with an entry point in the ``imagegen`` group whose module calls
``register`` from the one hook::

    from imagegen.provider import HTTPProvider, hookimpl

    class AcmeProvider(HTTPProvider):
        name = "acme"
        models_file = "models.toml"
        ...

    @hookimpl
    def imagegen_register_providers(register):
        register(AcmeProvider)

``docs/provider-guide.md`` walks through a complete one (``examples/imagegen-acme``), from
``pyproject.toml`` to its emulator and ``imagegen.testing.contract``. The built-in providers
use this module and nothing private.

What the kit holds:

- ``Provider`` (any API, an SDK included), ``HTTPProvider`` (a REST API: sending,
  authentication, redirects, JSON) and ``SynchronousProvider`` (an API that answers in the
  call and keeps no jobs: write ``call``), with ``ProviderSettings``, ``RateLimits``, ``OnSubmit``;
- errors: ``StatusRule`` tables over ``DEFAULT_STATUS_ERRORS``, ``ErrorReply`` and
  ``ErrorDetails`` for reading a vendor's error body, and ``parsing()``, the one source of
  ``InvalidResponseError``;
- data: ``load_models`` (the one model-file loader), ``ModelSpec``, ``Price``;
- jobs: ``PollSchedule``/``AdaptivePollSchedule``, ``make_job_id``, output fetching
  (``fetch_image``, ``DownloadPolicy``) and inline outputs (``decode_image``, ``decode_base64``);
- vendor JSON values: ``json_object``, ``json_objects``, ``parse_number``, ``parse_time``;
- HTTP facts: ``parse_wait_hint``, ``retry_after_from_headers``, ``describe_body``,
  ``shared_ssl_context``, ``PreparedPost`` (a per-call POST built once); streaming
  previews: ``partial_sink``, ``PartialImage``;
  ``default_data_dir`` for files a provider keeps between runs; a vendor's own batch API:
  ``VendorBatchAPI``, ``VendorBatchSnapshot``, ``Delivery``, ``MEMBER_SEPARATOR`` (in member job
  ids) and ``BATCH_POLL_SCHEDULE``.
"""

from ._capabilities import ModelSpec, Price, load_models, read_data_file
from ._http import (
    DownloadPolicy,
    describe_body,
    fetch_image,
    parse_wait_hint,
    retry_after_from_headers,
    shared_ssl_context,
)
from ._http_provider import HTTPProvider
from ._jobstore import default_data_dir
from ._models import make_job_id, split_job_id
from ._outputs import decode_base64, decode_image
from ._plugins import hookimpl
from ._polling import AdaptivePollSchedule, PollSchedule, Schedule
from ._prepared import PreparedPost
from ._provider import OnSubmit, Provider, ProviderSettings, RateLimits, parsing
from ._status import DEFAULT_STATUS_ERRORS, ErrorDetails, ErrorReply, StatusRule
from ._streaming import PartialImage, PartialSink, partial_sink
from ._synchronous import SynchronousProvider
from ._values import json_object, json_objects, parse_number, parse_time
from ._vendor_batch import MEMBER_SEPARATOR, Delivery, VendorBatchAPI, VendorBatchSnapshot
from ._vendor_batch_follow import BATCH_POLL_SCHEDULE

__all__ = [
    "BATCH_POLL_SCHEDULE",
    "DEFAULT_STATUS_ERRORS",
    "MEMBER_SEPARATOR",
    "AdaptivePollSchedule",
    "Delivery",
    "DownloadPolicy",
    "ErrorDetails",
    "ErrorReply",
    "HTTPProvider",
    "ModelSpec",
    "OnSubmit",
    "PartialImage",
    "PartialSink",
    "PollSchedule",
    "PreparedPost",
    "Price",
    "Provider",
    "ProviderSettings",
    "RateLimits",
    "Schedule",
    "StatusRule",
    "SynchronousProvider",
    "VendorBatchAPI",
    "VendorBatchSnapshot",
    "decode_base64",
    "decode_image",
    "default_data_dir",
    "describe_body",
    "fetch_image",
    "hookimpl",
    "json_object",
    "json_objects",
    "load_models",
    "make_job_id",
    "parse_number",
    "parse_time",
    "parse_wait_hint",
    "parsing",
    "partial_sink",
    "read_data_file",
    "retry_after_from_headers",
    "shared_ssl_context",
    "split_job_id",
]

# The kit's own classes report this module; those ``imagegen`` exports keep ``imagegen``.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("imagegen._"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
del _name, _obj
