"""The shared services a client is assembled from, each chosen by one config section.

Redis-backed variants import the `redis` extra only when configured.

Emulator runs are kept apart from real ones. A client whose every configured provider has a
loopback ``base_url`` (``imagegen demo``, ``imagegen.testing``, a provider pointed at
``imagegen emulate``) keeps its job store and ledger in ``<data dir>/emulators/`` and its cache
in memory, unless ``[jobs]``, ``[ledger]`` or ``[cache]`` say otherwise: emulator "spend"
never shows in the real ``imagegen cost`` or counts toward real budgets, and a cached answer
never hides an emulator's fault plan. Such a client refuses to call a provider that would
reach a real service (``AsyncClient.provider``), so real spend never lands in the emulator
ledger. A config that mixes loopback and real providers uses the real stores.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from urllib.parse import urlsplit

from ._blobs import BlobDir
from ._cache import CacheBackend, DiskCache, MemoryCache, RedisCache
from ._config import Config
from ._errors import ConfigurationError
from ._jobstore import JobStore, MemoryJobStore, RedisJobStore, SqliteJobStore
from ._journal import journal_for
from ._ledger import BudgetLimits, Ledger, RedisLedger
from ._ratelimit import RateLimiter, RedisWindow
from ._storage import CacheGuard, cache_faults, describe_fault, guarded, translated

__all__ = ["EMULATOR_DIR", "is_loopback_url", "link_image_files", "make_cache", "make_job_store", "make_ledger",
           "make_limiter", "points_at_emulators"]

#: Subdirectory of the data directory for the stores of clients pointed at emulators.
EMULATOR_DIR = "emulators"


def is_loopback_url(url: str | None) -> bool:
    host = urlsplit(url).hostname if url else None
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def points_at_emulators(config: Config) -> bool:
    """Every configured provider has a loopback ``base_url`` (and there is at least one)."""
    tables = list(config.providers.values())
    return bool(tables) and all(is_loopback_url(table.get("base_url")) for table in tables)


def _emulator_file(config: Config, name: str) -> Path | None:
    from ._jobstore import default_data_dir

    return default_data_dir() / EMULATOR_DIR / name if points_at_emulators(config) else None


def _redis_url(section: str, url: str | None) -> str:
    if not url:
        raise ConfigurationError(f"{section}.backend = \"redis\" needs {section}.url = \"redis://...\"")
    return url


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def make_job_store(config: Config) -> JobStore:
    """The configured job store, every method of which raises ``StorageError`` for a storage fault."""
    jobs = config.jobs
    if jobs.backend == "memory":
        return guarded(MemoryJobStore(), "job store")
    with translated("job store", "be opened"):
        if jobs.backend == "redis":
            return guarded(RedisJobStore(_redis_url("jobs", jobs.url)), "job store")
        return guarded(SqliteJobStore(_path(jobs.path) or _emulator_file(config, "jobs.sqlite3")), "job store")


def make_cache(config: Config) -> CacheGuard | None:
    """The configured cache behind ``CacheGuard``: its faults are misses with a warning, and a cache
    that cannot be opened (a corrupt index, a read-only directory) is one that always misses."""
    cache = config.cache
    if cache.backend == "off":
        return None
    backend: CacheBackend
    try:
        if cache.backend == "memory" or (points_at_emulators(config) and not cache.model_fields_set):
            backend = MemoryCache(ttl_s=cache.ttl_s, max_bytes=cache.max_bytes)
        elif cache.backend == "redis":
            backend = RedisCache(_redis_url("cache", cache.url), ttl_s=cache.ttl_s)
        else:
            backend = DiskCache(_path(cache.path), ttl_s=cache.ttl_s, max_bytes=cache.max_bytes)
    except cache_faults() as exc:
        broken = CacheGuard(None, broken=f"the cache cannot be opened ({describe_fault(exc)}); every call "
                                         "is served without it. Delete the cache directory (or fix cache.path) "
                                         "to rebuild it")
        logging.getLogger("imagegen").warning("imagegen: %s", broken.broken)
        return broken
    return CacheGuard(backend)


def make_ledger(config: Config) -> Ledger | RedisLedger | None:
    """The configured ledger (guarded like the job store), with its charge journal replayed into it."""
    ledger = config.ledger
    if ledger.backend == "off":
        if BudgetLimits(**config.budget.model_dump()).windows(0.0):
            raise ConfigurationError("a budget needs the ledger: remove ledger.backend = \"off\"")
        return None
    with translated("ledger", "be opened"):
        if ledger.backend == "redis":
            made: Ledger | RedisLedger = RedisLedger(_redis_url("ledger", ledger.url), prefix=ledger.key_prefix)
        else:
            made = Ledger(":memory:" if ledger.backend == "memory"
                          else _path(ledger.path) or _emulator_file(config, "ledger.sqlite3"))
    journal_for(made).replay(made)
    return guarded(made, "ledger")


def make_limiter(config: Config) -> RateLimiter:
    limits = config.rate_limits
    if limits.backend == "redis":
        return RateLimiter(RedisWindow(_redis_url("rate_limits", limits.url), prefix=limits.key_prefix))
    return RateLimiter()


def link_image_files(jobs: JobStore, cache: CacheBackend | None) -> None:
    """Let the job store and the disk cache hard-link each other's image files: a result both
    keep is written to disk once (each still deletes only its own name)."""
    job_files = getattr(jobs, "blobs", None)
    cache_files = getattr(cache, "blobs", None)
    if isinstance(job_files, BlobDir) and isinstance(cache_files, BlobDir):
        job_files.siblings.append(cache_files)
        cache_files.siblings.append(job_files)
