"""The shared services a client is assembled from, each chosen by one config section.

Redis-backed variants import the `redis` extra only when configured.
"""

from __future__ import annotations

from pathlib import Path

from ._blobs import BlobDir
from ._cache import CacheBackend, DiskCache, MemoryCache, RedisCache
from ._config import Config
from ._errors import ConfigurationError
from ._jobstore import JobStore, MemoryJobStore, RedisJobStore, SqliteJobStore
from ._ledger import BudgetLimits, Ledger, RedisLedger
from ._ratelimit import RateLimiter, RedisWindow

__all__ = ["link_image_files", "make_cache", "make_job_store", "make_ledger", "make_limiter"]


def _redis_url(section: str, url: str | None) -> str:
    if not url:
        raise ConfigurationError(f"{section}.backend = \"redis\" needs {section}.url = \"redis://...\"")
    return url


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def make_job_store(config: Config) -> JobStore:
    jobs = config.jobs
    if jobs.backend == "memory":
        return MemoryJobStore()
    if jobs.backend == "redis":
        return RedisJobStore(_redis_url("jobs", jobs.url))
    return SqliteJobStore(_path(jobs.path))


def make_cache(config: Config) -> CacheBackend | None:
    cache = config.cache
    if cache.backend == "off":
        return None
    if cache.backend == "memory":
        return MemoryCache(ttl_s=cache.ttl_s, max_bytes=cache.max_bytes)
    if cache.backend == "redis":
        return RedisCache(_redis_url("cache", cache.url), ttl_s=cache.ttl_s)
    return DiskCache(_path(cache.path), ttl_s=cache.ttl_s, max_bytes=cache.max_bytes)


def make_ledger(config: Config) -> Ledger | RedisLedger | None:
    ledger = config.ledger
    if ledger.backend == "off":
        if BudgetLimits(**config.budget.model_dump()).windows(0.0):
            raise ConfigurationError("a budget needs the ledger: remove ledger.backend = \"off\"")
        return None
    if ledger.backend == "redis":
        return RedisLedger(_redis_url("ledger", ledger.url), prefix=ledger.key_prefix)
    return Ledger(":memory:" if ledger.backend == "memory" else _path(ledger.path))


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
