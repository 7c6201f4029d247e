"""The entry point (``[project.entry-points.imagegen]``): imported at discovery, so it stays light."""

from __future__ import annotations

from collections.abc import Callable

from imagegen.provider import Provider, hookimpl


@hookimpl
def imagegen_register_providers(register: Callable[[type[Provider]], None]) -> None:
    from .provider import AcmeProvider

    register(AcmeProvider)
