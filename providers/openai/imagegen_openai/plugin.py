"""Entry point of the ``openai`` provider plugin (entry-point group ``imagegen``)."""

from __future__ import annotations

from collections.abc import Callable

from imagegen.provider import Provider, hookimpl


@hookimpl
def imagegen_register_providers(register: Callable[[type[Provider]], None]) -> None:
    from ._provider import OpenAIProvider

    register(OpenAIProvider)
