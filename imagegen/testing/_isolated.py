"""A client for tests: pointed at emulators, with every store in memory.

A test that builds ``Client({"providers": {...}})`` by hand gets the defaults meant for real
use: the disk cache (a second run is served from it, so a fault plan never runs again) and a
SQLite job store and ledger on disk. ``isolated_client`` keeps all of them in memory, so each
test starts from nothing and leaves nothing behind::

    with serve(create_emulator(faults=FaultPlan.script("rate_limit", "ok"))) as server, \\
            isolated_client({"gemini": server}) as client:
        res = client.generate("a red fox")          # the fault plan runs, every time

Pytest users get the same through the ``imagegen_client`` fixture of
``imagegen.testing.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .._sync import Client
    from ._server import LoopbackServer

__all__ = ["isolated_client", "isolated_config"]

#: The api key an isolated client sends (emulators accept any key unless told otherwise).
TEST_API_KEY = "imagegen-test-key"
_IN_MEMORY = {"jobs": {"backend": "memory"}, "ledger": {"backend": "memory"}, "cache": {"backend": "memory"}}


def _base_url(target: LoopbackServer | str) -> str:
    return target if isinstance(target, str) else target.base_url


def isolated_config(providers: Mapping[str, LoopbackServer | str | Mapping[str, Any]],
                    **config: Any) -> dict[str, Any]:
    """A config whose providers point at emulators and whose stores are all in memory.

    ``providers`` maps a provider name to a server (or its base URL), or to a table of provider
    settings whose ``base_url`` may be a server (``{"nb2": {"plugin": "nanobanana2", "base_url":
    server}}``). ``config`` adds or replaces top-level sections (``routes=``, ``retry=``, ...).
    """
    tables: dict[str, dict[str, Any]] = {}
    for name, target in providers.items():
        table = dict(target) if isinstance(target, Mapping) else {"base_url": target}
        table["base_url"] = _base_url(table["base_url"])
        table.setdefault("api_key", TEST_API_KEY)
        tables[name] = table
    return {**_IN_MEMORY, "providers": tables, **config}


def isolated_client(providers: Mapping[str, LoopbackServer | str | Mapping[str, Any]], **config: Any) -> Client:
    """A blocking ``Client`` on ``isolated_config(providers, **config)`` (close it, or use ``with``)."""
    from .._sync import Client

    return Client(isolated_config(providers, **config))
