"""What the providers' cassette recorders and replay tests share.

Each provider keeps its own facts (scenarios, configs, filters, expected outcomes) in its
``record_cassettes.py`` and ``test_cassettes.py``; this module only runs them: record a
scenario from an emulator, record them all, replay one through the real ``Client`` or
``AsyncClient``, and check that every scenario has a small cassette with no secret in it.

Imported as ``tests.providers._cassettes`` (absolute: under pytest the provider folders are
top-level packages, run as scripts they are ``tests.providers.<provider>``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import vcr
from vcr.cassette import Cassette

from imagegen import AsyncClient, Client, ImageGenError
from imagegen.recording import record_cassette
from imagegen.testing import serve

ROOT = Path(__file__).resolve().parents[2]
MAX_CASSETTE_BYTES = 50_000

Check = Callable[[Any, Cassette], None]


def cassette_dir(provider: str) -> Path:
    """Where a provider's cassettes live: ``cassettes/<provider>``."""
    return ROOT / "cassettes" / provider


def record_from(emulator: Any, path: Path, config: Callable[[str], dict[str, Any]], call: Callable[[Any], Any],
                *, time_scale: float, replay_urls: dict[str, str]) -> Path:
    """Serve ``emulator`` on loopback and record ``call`` into ``path`` (config built for its base URL)."""
    with serve(emulator) as server:
        record_cassette(path, config(server.base_url), call, time_scale=time_scale, replay_urls=replay_urls)
    return path


def record_all(record: Callable[[str, Path], Path], names: Iterable[str], target: Path) -> None:
    """Record every scenario into ``target``, printing each file and its size."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = record(name, target)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        print(f"{shown}  {path.stat().st_size} bytes")


def replay_sync(replayer: vcr.VCR, path: Path, config: dict[str, Any], call: Callable[[Any], Any], check: Check,
                errors: type[Exception] | tuple[type[Exception], ...] = ImageGenError) -> None:
    """Play ``call`` on a ``Client`` from the cassette at ``path``; ``check(outcome, cassette)``.

    An error of type ``errors`` is the outcome; any other exception fails the test.
    """
    with replayer.use_cassette(str(path)) as cassette, Client(config) as client:
        try:
            outcome = call(client)
        except errors as exc:
            outcome = exc
        check(outcome, cassette)


async def replay_async(replayer: vcr.VCR, path: Path, config: dict[str, Any], call: Callable[[Any], Any],
                       check: Check, errors: type[Exception] | tuple[type[Exception], ...] = ImageGenError) -> None:
    """As ``replay_sync`` on an ``AsyncClient`` (``call`` may return an awaitable or a value)."""
    with replayer.use_cassette(str(path)) as cassette:
        async with AsyncClient(config) as client:
            try:
                outcome = call(client)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except errors as exc:
                outcome = exc
        check(outcome, cassette)


def assert_small_filtered_cassettes(directory: Path, scenarios: Iterable[str], *, absent: Iterable[str] = (),
                                    absent_any_case: Iterable[str] = ()) -> None:
    """One cassette per scenario and no other; each under ``MAX_CASSETTE_BYTES`` and free of
    every ``absent`` string (exact) and every ``absent_any_case`` string (in any case)."""
    assert sorted(p.stem for p in directory.glob("*.yaml")) == sorted(scenarios)
    for path in directory.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        for secret in absent:
            assert secret not in text, (path.name, secret)
        for secret in absent_any_case:
            assert secret.lower() not in text.lower(), (path.name, secret)
        assert path.stat().st_size < MAX_CASSETTE_BYTES
