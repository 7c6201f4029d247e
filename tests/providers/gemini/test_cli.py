"""``imagegen generate --provider gemini --json`` as a user runs it: a subprocess, a TOML config
whose key is ``env:GEMINI_API_KEY`` and whose ``base_url`` is a loopback emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import API_KEY, png_bytes


def write_config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "imagegen.toml"
    path.write_text(
        "[providers.gemini]\n"
        'api_key = "env:GEMINI_API_KEY"\n'
        f'base_url = "{base_url}"\n'
        'model = "gemini-3-pro-image"\n'
        "\n[jobs]\nbackend = \"sqlite\"\n"
        f'path = "{(tmp_path / "jobs.sqlite3").as_posix()}"\n'
        "\n[cache]\nbackend = \"off\"\n",
        encoding="utf-8")
    return path


def cli(*args: str, cfg: Path, expect: int = 0) -> dict:
    env = {**os.environ, "GEMINI_API_KEY": API_KEY}
    proc = subprocess.run([sys.executable, "-m", "imagegen", *args, "--json", "--config", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=60, cwd=cfg.parent)
    assert proc.returncode == expect, proc.stderr + proc.stdout
    assert API_KEY not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def cfg(server, tmp_path) -> Path:
    return write_config(tmp_path, server.base_url)


def test_generate_json_fields(cfg: Path, tmp_path: Path, emulator) -> None:
    out = cli("generate", "a red fox in the snow", "--provider", "gemini", "--aspect-ratio", "16:9",
              "--size", "2K", "--out", str(tmp_path / "out"), cfg=cfg)
    assert out["provider"] == "gemini" and out["model"] == "gemini-3-pro-image"
    assert out["job_id"].startswith("gemini:")
    [image] = out["images"]
    assert {"path", "mime_type", "width", "height", "sha256"} <= set(image)
    assert (image["mime_type"], image["width"], image["height"]) == ("image/jpeg", 2752, 1536)
    assert Path(image["path"]).is_file() and len(image["sha256"]) == 64
    assert out["cost"]["estimated"] is False and out["cost"]["usd"] > 0.134 and "credits" in out["cost"]
    assert out["usage"]["image_tokens"] == 1120 and out["usage"]["thoughts_tokens"] == 176
    assert out["latency_s"] > 0 and out["cached"] is False
    assert [a["outcome"] for a in out["attempts"]] == ["succeeded"]
    assert emulator.counters.calls["total"] == 1
    # The job is in the config's SQLite store: another process reports it.
    job = cli("status", out["job_id"], "--out", str(tmp_path / "again"), cfg=cfg)
    assert job["status"] == "succeeded" and job["result"]["images"][0]["sha256"] == image["sha256"]


def test_edit_with_references(cfg: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(png_bytes(30, 30, "red"))
    second.write_bytes(png_bytes(40, 20, "blue"))
    out = cli("edit", "put the red square on the blue one", "--image", str(first), "--image", str(second),
              "--provider", "gemini", "--model", "gemini-2.5-flash-image", "--out", str(tmp_path / "out"), cfg=cfg)
    assert out["model"] == "gemini-2.5-flash-image" and out["images"][0]["mime_type"] == "image/png"


def test_mask_and_refusal_exit_codes(cfg: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes())
    masked = cli("edit", "change the sky", "--image", str(image), "--mask", str(image), "--provider", "gemini",
                 cfg=cfg, expect=2)
    assert masked["error"]["type"] == "UnsupportedFeatureError" and "prompt" in masked["error"]["message"]
    refused = cli("generate", "a scene [[IMAGE_SAFETY]]", "--provider", "gemini", cfg=cfg, expect=3)
    assert refused["error"]["type"] == "ContentPolicyError" and refused["error"]["retryable"] is False
    limited = cli("generate", "a fox [[ERROR:quota:3]]", "--provider", "gemini", cfg=cfg, expect=3)
    assert limited["error"]["type"] == "RateLimitError" and limited["error"]["retry_after"] == 3.0


def test_the_readme_demo_runs_offline_and_says_when_it_was_cached(tmp_path: Path) -> None:
    """``imagegen demo`` is the README's first command: a real generate and edit, offline."""
    def demo(*extra: str) -> list[str]:
        proc = subprocess.run([sys.executable, "-m", "imagegen", "demo", "--out", str(tmp_path / "out"), *extra],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc.stdout.splitlines()

    first = demo()
    assert [line.split()[0] for line in first] == ["generate", "edit"]
    for line in first:
        path = Path(line.split()[1])
        assert (tmp_path / path if not path.is_absolute() else path).stat().st_size > 0
        assert "$0.0" in line and "$0.0000" not in line and "from the cache" not in line
    assert all("from the cache" in line and "$0.0000" in line for line in demo())
    assert not any("from the cache" in line for line in demo("--no-cache"))
