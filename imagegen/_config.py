"""Configuration: a TOML file, overridden by ``IMAGEGEN_*`` environment variables,
overridden by arguments. Resolved here and nowhere else.

The file is ``./imagegen.toml``, else ``$IMAGEGEN_CONFIG``, else ``imagegen.toml``
in the user config directory. Secrets are referenced (``"env:VAR"``), never stored:
a literal API key in a file is refused. Unknown keys are errors.

Environment overrides use ``__`` for nesting, e.g.
``IMAGEGEN_PROVIDERS__GEMINI__BASE_URL=http://127.0.0.1:8701``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ._errors import ConfigurationError, MissingCredentialsError
from ._ratelimit import RateLimitConfig
from ._resilience import CircuitConfig, RetryConfig

__all__ = ["BudgetConfig", "CacheConfig", "Config", "FleetConfig",
           "JobsConfig", "LedgerConfig", "PriceOverride", "RouteConfig",
           "config_from_mapping",
           "config_locations", "find_config_file", "load_config", "resolve_secret"]

_SECRET_KEYS = ("api_key",)


class RouteConfig(BaseModel):
    """An ordered fallback chain of configured providers."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    chain: list[str] = Field(min_length=1)
    #: Extra error classes (beyond retryable ones) that move on to the next provider.
    fallback_on: list[str] | None = None


class CacheConfig(BaseModel):
    """``[cache]``: where results are kept so identical requests are not paid for twice."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    backend: Literal["memory", "disk", "redis", "off"] = "disk"
    url: str | None = None
    path: str | None = None
    ttl_s: float | None = Field(default=None, gt=0)
    max_bytes: int | None = Field(default=2 * 1024**3, gt=0)
    #: Providers (``"gemini"``) or models (``"gemini/gemini-3-pro-image"``) always asked afresh.
    bypass: list[str] = Field(default_factory=list)


class LedgerConfig(BaseModel):
    """``[ledger]``: where every charged call is recorded (and budgets are checked)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    backend: Literal["sqlite", "memory", "redis", "off"] = "sqlite"
    path: str | None = None
    url: str | None = None
    key_prefix: str = "imagegen:ledger:"


class PriceOverride(BaseModel):
    """``[prices."provider/model"]`` (or ``[prices.provider]``): your negotiated prices, in USD."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    currency: Literal["USD"] = "USD"
    per_image_usd: dict[str, float] | None = None
    credits_per_image: dict[str, float] | None = None
    usd_per_credit: float | None = None
    rates: dict[str, float] | None = None
    source: str = "config override"
    as_of: date | None = None


class BudgetConfig(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    daily_usd: float | None = Field(default=None, ge=0)
    monthly_usd: float | None = Field(default=None, ge=0)
    total_usd: float | None = Field(default=None, ge=0)


class JobsConfig(BaseModel):
    """Where submitted jobs are recorded so status/wait work from any process."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    backend: Literal["sqlite", "memory", "redis"] = "sqlite"
    path: str | None = None
    url: str | None = None


class FleetConfig(BaseModel):
    """``[fleet]``: the Redis a fleet of workers shares (see ``imagegen.fleet``)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    url: str | None = None
    key_prefix: str = "imagegen:fleet:"
    #: A prompt held this long by a worker that stopped renewing it is handed to another.
    visibility_timeout_s: float = Field(default=60.0, gt=0)
    #: A prompt handed out this many times without an outcome is recorded as failed.
    max_deliveries: int = Field(default=5, ge=1)
    #: The window of each provider's ``requests_per_minute``; shorter only for scaled-time tests.
    rate_window_s: float = Field(default=60.0, gt=0)
    #: Extra time a request-rate slot is held, for the request's way to the vendor.
    rate_guard_s: float = Field(default=0.5, ge=0)
    #: A slot counts again from when its call ended, if that is within this long of taking it.
    rate_send_bound_s: float = Field(default=10.0, ge=0)
    #: Passed to fsspec for an ``--out`` URL (e.g. ``{"endpoint_url": ...}``); no secrets here.
    storage_options: dict[str, Any] = Field(default_factory=dict)


class Config(BaseModel):
    """The whole configuration. ``providers`` tables are checked by each provider's own settings."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    default: str | None = None
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    rate_limits: RateLimitConfig = Field(default_factory=RateLimitConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    #: Where the file came from, for error messages (not a config key).
    source: str | None = Field(default=None, exclude=True)


ENV_PREFIX = "IMAGEGEN_"


def _env_overrides() -> dict[str, Any]:
    """The config keys set through ``IMAGEGEN_*`` variables (``__`` nests), read by pydantic-settings.

    pydantic-settings is imported only when such a variable exists (its import costs more than
    the rest of the config): ``IMAGEGEN_DATA_DIR`` and other variables that name no config key
    do not count.
    """
    keys = tuple(f"{ENV_PREFIX}{name}".upper() for name in Config.model_fields if name != "source")
    if not any(var.upper() == key or var.upper().startswith(f"{key}__") for var in os.environ for key in keys):
        return {}
    from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

    namespace = {
        "model_config": SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"),
        "__annotations__": {name: field.annotation for name, field in Config.model_fields.items()
                            if name != "source"},
    }
    from_environment = type("ConfigFromEnvironment", (BaseSettings,), namespace)
    return EnvSettingsSource(from_environment)()


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, tables merged key by key (as pydantic-settings merges sources)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_locations() -> str:
    """Where a config file is looked for, in order (for messages that say where it goes)."""
    from platformdirs import user_config_dir

    return (f"imagegen reads ./imagegen.toml, else the file $IMAGEGEN_CONFIG names, else "
            f"{Path(user_config_dir('imagegen')) / 'imagegen.toml'}")


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    local = Path("imagegen.toml")
    if local.is_file():
        return local
    env = os.environ.get("IMAGEGEN_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    user = Path(user_config_dir("imagegen")) / "imagegen.toml"
    return user if user.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file: keeps ``import imagegen`` light

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"config file {path} cannot be read: {exc}") from exc
    for name, table in (data.get("providers") or {}).items():
        for key in _SECRET_KEYS:
            value = table.get(key) if isinstance(table, dict) else None
            if isinstance(value, str) and not value.startswith(("env:", "file:")):
                raise ConfigurationError(
                    f"{path}: providers.{name}.{key} holds a literal secret; store it in an environment "
                    f"variable and write {key} = \"env:VARIABLE_NAME\" instead"
                )
    return data


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Read the config file (if any), apply environment variables, then ``overrides``."""
    file = find_config_file(path)
    return _build(_read_toml(file) if file is not None else {}, file, overrides)


def config_from_mapping(data: dict[str, Any]) -> Config:
    """A Config from a dict, for code-only use (``Client(config={...})``); no file is read."""
    return _build({}, None, data)


def _build(data: dict[str, Any], file: Path | None, overrides: dict[str, Any]) -> Config:
    # Arguments override the environment, which overrides the file.
    try:
        config = Config.model_validate(_merged(_merged(data, _env_overrides()), overrides))
    except ValidationError as exc:
        raise ConfigurationError(_config_error_text(exc, file)) from None
    config.source = str(file) if file else None
    return config


def _config_error_text(exc: ValidationError, file: Path | None) -> str:
    where = f"config {file}" if file else "config"
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{key}: {msg}")
    return f"{where} is invalid: " + "; ".join(parts)


def resolve_secret(value: Any, *, key: str) -> SecretStr | None:
    """Turn ``"env:VAR"`` / ``"file:PATH"`` / a literal into a SecretStr, naming what is missing."""
    if value is None or isinstance(value, SecretStr):
        return value
    text = str(value)
    if text.startswith("env:"):
        var = text[4:]
        if not os.environ.get(var):
            raise MissingCredentialsError(f"{key} refers to the environment variable {var}, which is not set; "
                                          f"set {var}")
        return SecretStr(os.environ[var])
    if text.startswith("file:"):
        try:
            return SecretStr(Path(text[5:]).expanduser().read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise MissingCredentialsError(f"{key} refers to the file {text[5:]}, which cannot be read: "
                                          f"{exc.strerror or exc}") from None
    return SecretStr(text)
