"""Provider plugins: one pluggy hook, discovered through package entry points.

Built-in providers load through exactly the same entry-point path as third-party
ones. Discovery happens on first use, never at ``import imagegen``.

Environment:

- ``IMAGEGEN_LOAD_PLUGINS``: comma-separated allow-list of entry-point names
  (set but empty: load none).
- ``IMAGEGEN_DISABLE_PLUGINS``: comma-separated entry-point names to skip.
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pluggy

from ._errors import ConfigurationError, UnknownProviderError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from ._provider import Provider

__all__ = ["ENTRY_POINT_GROUP", "PluginRegistry", "hookimpl", "registry"]

ENTRY_POINT_GROUP = "imagegen"
hookspec = pluggy.HookspecMarker("imagegen")
hookimpl = pluggy.HookimplMarker("imagegen")


class _HookSpecs:
    @hookspec
    def imagegen_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        """Call ``register(ProviderClass)`` once for each provider the plugin offers."""


def _env_names(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class PluginRegistry:
    """The provider classes offered by plugins, loaded lazily and once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pm: pluggy.PluginManager | None = None
        self._providers: dict[str, type[Provider]] | None = None

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        with self._lock:
            if self._pm is None:
                self._pm = self._load()
            return self._pm

    def _load(self) -> pluggy.PluginManager:
        pm = pluggy.PluginManager("imagegen")
        pm.add_hookspecs(_HookSpecs)
        allow = _env_names("IMAGEGEN_LOAD_PLUGINS")
        deny = _env_names("IMAGEGEN_DISABLE_PLUGINS") or set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if (allow is not None and ep.name not in allow) or ep.name in deny:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue  # the same distribution seen twice on sys.path
            try:
                module = ep.load()
            except Exception as exc:
                raise ConfigurationError(
                    f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                    f"uninstall it or set IMAGEGEN_DISABLE_PLUGINS={ep.name}"
                ) from exc
            pm.register(module, name=ep.name)
        return pm

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object in code (tests, notebooks); same hook as entry points."""
        self.plugin_manager.register(plugin, name=name)
        with self._lock:
            self._providers = None

    def providers(self) -> dict[str, type[Provider]]:
        """Provider classes by name, calling every plugin's hook the first time."""
        pm = self.plugin_manager
        with self._lock:
            if self._providers is None:
                found: dict[str, type[Provider]] = {}

                def register(cls: type[Provider]) -> None:
                    if cls.name in found and found[cls.name] is not cls:
                        raise ConfigurationError(f"two plugins register a provider named {cls.name!r}")
                    found[cls.name] = cls

                pm.hook.imagegen_register_providers(register=register)
                self._providers = found
            return dict(self._providers)

    def provider_class(self, name: str) -> type[Provider]:
        providers = self.providers()
        try:
            return providers[name]
        except KeyError:
            known = ", ".join(sorted(providers)) or "none (no plugins loaded)"
            raise UnknownProviderError(
                f"no provider plugin named {name!r}; installed: {known}"
            ) from None

    def reset(self) -> None:
        """Forget what was loaded; the next use discovers plugins again."""
        with self._lock:
            self._pm = None
            self._providers = None


#: The process-wide registry used by clients unless they are given another.
registry = PluginRegistry()
