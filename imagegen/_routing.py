"""Which provider(s) serve a call, and in what order.

``provider=`` accepts a configured provider name, a ``"provider/model"`` id, or a
route name (an ordered fallback chain from config); nothing given means the
config's ``default``. A chain moves to its next provider when one fails with a
retryable error, cannot serve the request (recorded as skipped), or fails with an
error class listed in the route's ``fallback_on``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._config import Config, RouteConfig
from ._errors import (
    ContentPolicyError,
    ImageGenError,
    InsufficientCreditsError,
    InvalidRequestError,
    NoImageReturnedError,
    UnknownProviderError,
)

__all__ = ["DEFAULT_FALLBACK_ON", "Plan", "Target", "resolve"]

#: Non-retryable errors that still move a route on by default: another provider may
#: well accept the prompt, return an image, or have credits left.
DEFAULT_FALLBACK_ON: tuple[type[ImageGenError], ...] = (
    ContentPolicyError,
    NoImageReturnedError,
    InsufficientCreditsError,
)


@dataclass(frozen=True)
class Target:
    """One configured provider instance, optionally pinned to a model."""

    provider: str
    model: str | None = None

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}" if self.model else self.provider


@dataclass(frozen=True)
class Plan:
    """The targets to try in order, and what makes the chain move on."""

    name: str
    targets: tuple[Target, ...]
    is_route: bool = False
    fallback_on: tuple[str, ...] = ()

    def falls_through(self, error: ImageGenError) -> bool:
        """Whether ``error`` from one target should move on to the next one."""
        if not self.is_route:
            return False
        if error.retryable or isinstance(error, InvalidRequestError):
            return True
        names = {cls.__name__ for cls in type(error).__mro__}
        return bool(names & set(self.fallback_on))


def _target(spec: str) -> Target:
    provider, _, model = spec.partition("/")
    return Target(provider=provider, model=model or None)


def resolve(config: Config, wanted: str | None, *, known_plugins: set[str]) -> Plan:
    """Turn ``provider=`` (or the config's default) into a Plan."""
    name = wanted or config.default
    if not name:
        if len(config.providers) == 1:
            name = next(iter(config.providers))
        else:
            from ._config import config_locations

            where = f"in {config.source}" if config.source else f"in a config file ({config_locations()})"
            raise UnknownProviderError(
                "no provider given and no default configured: name one (provider=... in Python, "
                f"--provider on the command line) or set default = \"<provider or route>\" {where}"
            )
    if name in config.routes:
        route: RouteConfig = config.routes[name]
        fallback = route.fallback_on if route.fallback_on is not None else [c.__name__ for c in DEFAULT_FALLBACK_ON]
        return Plan(name=name, targets=tuple(_target(t) for t in route.chain), is_route=True,
                    fallback_on=tuple(fallback))
    target = _target(name)
    if target.provider not in config.providers and target.provider not in known_plugins:
        choices = sorted({*config.providers, *config.routes, *known_plugins})
        raise UnknownProviderError(
            f"{name!r} is not a configured provider, a route or an installed plugin; "
            f"choose one of: {', '.join(choices) or 'none configured'}"
        )
    return Plan(name=name, targets=(target,))
