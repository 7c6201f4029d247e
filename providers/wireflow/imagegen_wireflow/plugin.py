"""Entry point of the wireflow provider plugin: imported at discovery, so it stays light."""

from imagegen import hookimpl


@hookimpl
def imagegen_register_providers(register):
    from .provider import WireflowProvider

    register(WireflowProvider)
