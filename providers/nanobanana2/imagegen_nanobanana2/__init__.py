"""imagegen provider plugin for the nano-banana2.com REST API (``plugin = "nanobanana2"``).

    [providers.nb2]
    plugin = "nanobanana2"
    api_key = "env:NANO_BANANA_API_KEY"

Importing this package is light: httpx and imagegen only; the emulator (starlette)
loads from ``imagegen_nanobanana2.emulator`` on use.
"""

from ._provider import NanoBanana2Provider, NanoBanana2Settings
from ._webhooks import job_from_webhook

__all__ = ["NanoBanana2Provider", "NanoBanana2Settings", "job_from_webhook"]
