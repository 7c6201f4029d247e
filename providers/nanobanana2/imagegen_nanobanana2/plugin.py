"""Entry point of the nanobanana2 provider plugin."""

from imagegen import hookimpl


@hookimpl
def imagegen_register_providers(register):  # type: ignore[no-untyped-def]
    # Imported here so that plugin discovery costs nothing until providers are listed.
    from imagegen_nanobanana2 import NanoBanana2Provider

    register(NanoBanana2Provider)
