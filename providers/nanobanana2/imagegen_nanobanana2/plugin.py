"""Entry point of the nanobanana2 provider plugin."""

from collections.abc import Callable

from imagegen.provider import Provider, hookimpl


@hookimpl
def imagegen_register_providers(register: Callable[[type[Provider]], None]) -> None:
    # Imported here so that plugin discovery costs nothing until providers are listed.
    from imagegen_nanobanana2 import NanoBanana2Provider

    register(NanoBanana2Provider)
