"""No API key leaks: a session through all four providers, failures included, with
distinctive keys given as ``env:`` references; then everything the library emitted is
scanned for them -- logs at DEBUG (every logger), exception messages, reprs, ``to_dict`` and
full tracebacks, results, recorded cassettes, the SQLite job store and ledger (file bytes,
WAL included), the cache directory, and the CLI's ``--json`` output.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from urllib.parse import quote

from imagegen import Client, ImageGenError
from imagegen.testing import Fault, FaultPlan, LatencyModel, serve, synth_image

KEYS = {
    "gemini": ("SECRETS_TEST_GEMINI", "AIzaSyLEAKCHECK-gemini-5c1e9d2b7a"),
    "nb2": ("SECRETS_TEST_NB2", "nb2LEAKCHECK-a41f77e0c3d9"),
    "wireflow": ("SECRETS_TEST_WIREFLOW", "sk-LEAKCHECK-wireflow-93bd2c61"),
    "openai": ("SECRETS_TEST_OPENAI", "sk-proj-LEAKCHECK-openai-7f3a91c2"),
}
PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2", "wireflow": "wireflow", "openai": "openai"}
FAULTS = ["rate_limit", "server_error", "html", "truncate", "drop", "malformed"]


def _emulators(strict: bool):
    from imagegen_gemini.emulator import create_emulator as gemini
    from imagegen_nanobanana2.emulator import create_emulator as nb2
    from imagegen_openai.emulator import create_emulator as openai
    from imagegen_wireflow.emulator import create_emulator as wireflow

    none = LatencyModel.none()
    # Strict emulators know other keys only, so every call is an authentication failure.
    other = ["someone-elses-key"]
    return {
        "gemini": gemini(latency=none, image_scale=0.02, api_keys=other if strict else None),
        "nb2": nb2(latency=none, image_scale=0.02, api_keys=other if strict else None),
        "wireflow": wireflow(latency=none, image_scale=0.02, executions_per_minute=1e6,
                             api_keys=other if strict else None),
        "openai": openai(latency=none, image_scale=0.02, api_keys=other if strict else None),
    }


def _config(servers, tmp: Path) -> dict:
    providers = {n: {"plugin": PLUGINS[n], "base_url": s.base_url, "api_key": f"env:{KEYS[n][0]}"}
                 for n, s in servers.items()}
    providers["nb2"]["poll_interval"] = 0.01
    providers["wireflow"].update(poll_schedule=[0.01, 1.5, 0.02], executions_per_minute=1e6)
    return {"providers": providers, "routes": {"all": {"chain": list(servers)}},
            "jobs": {"backend": "sqlite", "path": str(tmp / "jobs.sqlite3")},
            "ledger": {"backend": "sqlite", "path": str(tmp / "ledger.sqlite3")},
            "cache": {"backend": "disk", "path": str(tmp / "cache")},
            "retry": {"initial_backoff_s": 0.0, "max_backoff_s": 0.01, "max_attempts": 2}}


def _toml(config: dict, path: Path) -> Path:
    lines = []
    for table, values in [("jobs", config["jobs"]), ("ledger", config["ledger"]), ("cache", config["cache"]),
                          ("retry", config["retry"]), *[(f"providers.{n}", t) for n, t in config["providers"].items()]]:
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _describe(error: BaseException) -> str:
    parts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, ImageGenError):
        parts.append(json.dumps(error.to_dict(), default=str))
        parts.append(repr(getattr(error, "body", None)))
        parts += [a.model_dump_json() for a in getattr(error, "attempts", None) or []]
    return "\n".join(parts)


def _session(client: Client, emitted: list[str], servers) -> None:
    """Successes, edits, jobs and every fault on every provider; everything they return is kept."""
    image = synth_image(24, 24, "png", seed=3)

    def keep(call):
        try:
            result = call()
            emitted.append(repr(result) + result.model_dump_json() if hasattr(result, "model_dump_json")
                           else repr(result))
        except ImageGenError as exc:
            emitted.append(_describe(exc))

    # keep() calls each lambda at once, so the loop variables are the current ones.
    for name in servers:
        keep(lambda: client.generate("a fox", provider=name, cache=False))  # noqa: B023
        keep(lambda: client.edit("make it blue", images=[image], provider=name))  # noqa: B023
        for kind in FAULTS:
            servers[name].emulator.faults = FaultPlan.script(*[Fault(kind, retry_after=0.01)] * 4)
            keep(lambda: client.generate(f"a fox under {kind}", provider=name, cache=False))  # noqa: B023
        servers[name].emulator.faults = FaultPlan()
    job = client.submit("a submitted fox", provider="wireflow")
    keep(lambda: client.status(job.id))
    keep(lambda: client.wait(job.id, timeout=30))
    keep(lambda: client.status("gemini:no-such-job"))
    for server in servers.values():
        server.emulator.faults = FaultPlan.script(*["server_error"] * 4)
    keep(lambda: client.generate("everyone fails", provider="all", cache=False))
    for server in servers.values():
        server.emulator.faults = FaultPlan()
    keep(lambda: client.generate("a fox", provider="gemini"))  # a cache hit


def _leaks(text: str | bytes) -> list[str]:
    found = []
    for name, (_, key) in KEYS.items():
        for form in {key, quote(key, safe="")}:
            needle = form.encode() if isinstance(text, bytes) else form
            if needle in text:
                found.append(name)
    return found


def test_no_api_key_appears_in_anything_the_library_emits(tmp_path, monkeypatch, caplog):
    for var, key in KEYS.values():
        monkeypatch.setenv(var, key)
    caplog.set_level(logging.DEBUG)  # the root logger: httpx, httpcore, google-genai, imagegen
    emitted: list[str] = []
    servers = {n: serve(e).start() for n, e in _emulators(strict=False).items()}
    strict = {n: serve(e).start() for n, e in _emulators(strict=True).items()}
    try:
        config = _config(servers, tmp_path)
        with Client(config) as client:
            _session(client, emitted, servers)
        with Client(_config(strict, tmp_path / "strict")) as client:  # rejected keys
            for name in strict:
                try:
                    client.generate("a fox", provider=name, cache=False)
                except ImageGenError as exc:
                    emitted.append(_describe(exc))
                    assert "Authentication" in type(exc).__name__ or "Permission" in type(exc).__name__, exc

        # Cassettes, recorded the way the recorder scripts do it.
        from imagegen.recording import record_cassette

        for name in servers:
            servers[name].emulator.faults = FaultPlan.script(Fault("rate_limit", retry_after=0.01))
            record_cassette(tmp_path / "cassettes" / f"{name}.yaml", config,
                            lambda c, name=name: c.generate("a recorded fox", provider=name, cache=False))

        # The CLI, in another process, with --json: successes and failures.
        env = {**os.environ, **dict(KEYS.values()), "IMAGEGEN_DATA_DIR": str(tmp_path / "cli-data")}
        good = _toml(config, tmp_path / "good.toml")
        bad = _toml(_config(strict, tmp_path / "s2"), tmp_path / "bad.toml")
        for args in (["generate", "a cli fox", "--provider", "nb2", "--no-cache"],
                     ["generate", "a cli fox", "--provider", "wireflow", "--no-cache"],
                     ["stream", "a cli fox", "--provider", "openai", "--no-cache"],
                     ["jobs"], ["estimate", "a fox", "--provider", "gemini"]):
            run = subprocess.run([sys.executable, "-m", "imagegen", *args, "--json", "--config", str(good),
                                  *(["--out", str(tmp_path / "cli-out")] if args[0] == "generate" else [])],
                                 env=env, capture_output=True, text=True, timeout=60)
            assert run.returncode == 0, run.stdout + run.stderr
            emitted.append(run.stdout + run.stderr)
        for name in strict:
            run = subprocess.run([sys.executable, "-m", "imagegen", "generate", "a fox", "--provider", name,
                                  "--json", "--config", str(bad), "--out", str(tmp_path / "cli-out")],
                                 env=env, capture_output=True, text=True, timeout=60)
            assert run.returncode == 3 and json.loads(run.stdout)["error"]["type"], run.stdout + run.stderr
            emitted.append(run.stdout + run.stderr)
    finally:
        for server in [*servers.values(), *strict.values()]:
            server.stop()

    logs = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert len(caplog.records) > 50  # the debug logs really were captured
    assert not _leaks(logs), [line for line in logs.splitlines() if _leaks(line)][:5]
    for text in emitted:
        assert not _leaks(text), text[:2000]
    files = [p for root in (tmp_path, Path(os.environ["IMAGEGEN_DATA_DIR"]), Path(os.environ["XDG_CACHE_HOME"]))
             if root.exists() for p in root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"jobs.sqlite3", "ledger.sqlite3", "gemini.yaml", "nb2.yaml", "wireflow.yaml", "openai.yaml"} <= names, names
    for path in files:
        assert not _leaks(path.read_bytes()), f"{path} holds an API key"
