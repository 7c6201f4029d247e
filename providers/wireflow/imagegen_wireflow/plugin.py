"""Entry point of the wireflow provider plugin: imported at discovery, so it stays light."""

from collections.abc import Callable

from imagegen.provider import Provider, hookimpl


@hookimpl
def imagegen_register_providers(register: Callable[[type[Provider]], None]) -> None:
    from .provider import WireflowProvider

    register(WireflowProvider)
