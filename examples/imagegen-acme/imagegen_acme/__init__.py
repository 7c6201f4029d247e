"""imagegen provider plugin for the Acme Images API (``plugin = "acme"``)."""

from .provider import AcmeProvider

__all__ = ["AcmeProvider"]
