"""Recording: real calls through a ``Client``, written to a cassette with elapsed times.

Timing sits in an httpx transport wrapped around the real one, outside vcrpy's patch of
``AsyncHTTPTransport``: vcrpy reads the whole answer, appends the interaction and returns
without yielding to the event loop, so when the wrapped call returns, the cassette's last
interaction is the one just timed (checked by method and URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._config import Config, config_from_mapping, load_config, resolve_secret
from .._errors import ImageGenError
from .._models import ImageRequest, ImageResult
from ._cassette import FILTERED, CassetteInfo, fresh_provider_state, recording_vcr, write_info

__all__ = ["RecordingClient", "record_cassette", "secrets_of"]

#: Sections of the config a replay needs (the rest is replay-specific: memory jobs, no cache).
_REPLAYED_SECTIONS = ("default", "providers", "routes", "retry", "circuit", "prices")


class _TimingTransport(httpx.AsyncBaseTransport):
    def __init__(self, cassette: Any) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._cassette = cassette

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        elapsed = time.perf_counter() - started
        data = self._cassette.data
        if data:
            stored, answer = data[-1]
            if stored.method == request.method and "elapsed_s" not in answer:
                answer["elapsed_s"] = round(elapsed, 6)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingClient:
    """The blocking ``Client``'s generate/edit, noting each request for the cassette."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests: list[ImageRequest] = []
        self.outcomes: list[dict[str, Any]] = []
        #: ``calls``, or ``vendor_batch`` / ``session`` once ``run_batch`` / ``session`` is used.
        self.kind = "calls"

    def run_batch(self, requests: list[ImageRequest | str], **options: Any) -> Any:
        """``submit_batch`` then ``wait`` (see ``_kinds``); the cassette replays it as a vendor batch."""
        from ._kinds import record_batch

        return record_batch(self, requests, **options)

    def session(self, provider: str | None = None) -> Any:
        """An edit session whose turns the cassette replays through ``Client.session``."""
        from ._kinds import RecordingSession

        return RecordingSession(self, provider)

    def generate(self, prompt: str | ImageRequest, **options: Any) -> ImageResult:
        request = prompt if isinstance(prompt, ImageRequest) else ImageRequest.build(prompt=prompt, **options)
        return self._run(request)

    def edit(self, prompt: str, *, images: Any, mask: Any = None, **options: Any) -> ImageResult:
        return self._run(ImageRequest.build(prompt=prompt, operation="edit", images=images, mask=mask, **options))

    def _run(self, request: ImageRequest) -> ImageResult:
        self.requests.append(request)
        started = time.perf_counter()
        try:
            result: ImageResult = self.client.generate(request)
        except ImageGenError as exc:
            self.outcomes.append({"outcome": type(exc).__name__, "latency_s": time.perf_counter() - started,
                                  "provider": exc.to_dict()["provider"], "error": str(exc)})
            raise
        self.outcomes.append({"outcome": "ImageResult", "latency_s": result.latency_s, "provider": result.provider,
                              "model": result.model, "images": len(result.images),
                              "cost": result.cost.model_dump(mode="json", include={"usd", "credits", "estimated"})})
        return result


def secrets_of(config: Config) -> list[str]:
    """Every api key the config resolves to (values to scrub from whatever is recorded)."""
    found = []
    for name, table in config.providers.items():
        if table.get("api_key") is not None:
            secret = resolve_secret(table["api_key"], key=f"providers.{name}.api_key")
            if secret is not None:
                found.append(secret.get_secret_value())
    return found


def _provider_names(config: Config) -> set[str]:
    names = set(config.providers)
    for route in config.routes.values():
        names.update(entry.partition("/")[0] for entry in route.chain)
    return names


def _replay_config(config: Config, replay_urls: Mapping[str, str]) -> dict[str, Any]:
    dumped = config.model_dump(mode="json", include=set(_REPLAYED_SECTIONS), exclude_defaults=True)
    providers = {}
    for name, table in config.providers.items():
        table = {k: v for k, v in table.items() if k != "api_key"}
        if name in replay_urls:
            table["base_url"] = replay_urls[name]
        providers[name] = table
    dumped["providers"] = providers
    return dumped


def _loopback_replay_urls(config: Config) -> dict[str, str]:
    """Emulators on random loopback ports are replayed at fixed ports 8701, 8702, ... (per provider)."""
    urls = {}
    for index, name in enumerate(sorted(config.providers)):
        base = config.providers[name].get("base_url")
        host = urlsplit(base).hostname if base else None
        if host in ("127.0.0.1", "localhost", "::1"):
            parts = urlsplit(str(base))
            urls[name] = f"{parts.scheme}://127.0.0.1:{8701 + index}{parts.path}".rstrip("/")
    return urls


def record_cassette(path: str | Path, config: Config | Mapping[str, Any] | str | Path | None,
                    calls: Callable[[RecordingClient], Any] | Sequence[ImageRequest | str], *,
                    time_scale: float = 1.0, source: str | None = None,
                    replay_urls: Mapping[str, str] | None = None,
                    extra_secrets: Iterable[str] = ()) -> CassetteInfo:
    """Make ``calls`` through a real ``Client`` and write what went over the wire to ``path``.

    ``calls`` is a list of requests (or prompts), or a function given a ``RecordingClient``
    that calls ``generate``/``edit`` on it; an ``ImageGenError`` it raises is recorded, not
    raised. Loopback base URLs (emulators) are rewritten to fixed ports so the cassette
    replays from any machine (``replay_urls`` chooses them per provider); ``time_scale`` says
    how much faster than real the recording ran.
    """
    from .._sync import Client

    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = config_from_mapping(dict(config))
    else:
        cfg = load_config(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    secrets = [*secrets_of(cfg), *extra_secrets]
    # Every call reaches the provider: a cache hit would leave nothing to record.
    run_config = cfg.model_copy(update={"jobs": cfg.jobs.model_copy(update={"backend": "memory"}),
                                        "cache": cfg.cache.model_copy(update={"backend": "off"})})
    with recording_vcr(secrets).use_cassette(str(path)) as cassette:
        transports = {name: _TimingTransport(cassette) for name in _provider_names(cfg)}
        with Client(run_config, transports=transports) as client, fresh_provider_state():
            recorder = RecordingClient(client)
            if callable(calls):
                try:
                    calls(recorder)
                except ImageGenError:
                    pass
            else:
                for call in calls:
                    try:
                        recorder.generate(call)
                    except ImageGenError:
                        pass
    replay_urls = {**_loopback_replay_urls(cfg), **(replay_urls or {})}
    rewrites = {}
    for name, url in replay_urls.items():
        recorded = urlsplit(cfg.providers[name]["base_url"])
        rewrites[f"{recorded.hostname}:{recorded.port}"] = urlsplit(url).netloc
    is_emulator = bool(replay_urls) and len(replay_urls) == len(cfg.providers)
    info = CassetteInfo(config=_replay_config(cfg, replay_urls),
                        requests=[r.model_dump(mode="json", exclude_defaults=True) for r in recorder.requests],
                        time_scale=time_scale, source=source or ("emulator" if is_emulator else "service"),
                        recorded_at=datetime.now(UTC).date().isoformat(), outcomes=recorder.outcomes,
                        kind=recorder.kind)
    if path.exists():
        # Secrets go from the metadata too (a prompt may quote one); hosts are rewritten.
        write_info(path, info, replace_text={**{s: FILTERED for s in secrets if len(s) >= 8}, **rewrites})
    return info
