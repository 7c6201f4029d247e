"""Entry point of the nanobanana2 provider plugin (registration is added with the provider)."""

from imagegen import hookimpl


@hookimpl
def imagegen_register_providers(register):  # noqa: ARG001 - provider not built yet
    return None
