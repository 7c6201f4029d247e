"""The ``imagegen`` CLI against the emulator, as a user runs it: a subprocess, a TOML config, ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegen import Client

from .conftest import API_KEY, config

ENV_KEY = "NANO_BANANA_API_KEY"


def write_config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "imagegen.toml"
    path.write_text(
        "[providers.nanobanana2]\n"
        f'api_key = "env:{ENV_KEY}"\n'
        f'base_url = "{base_url}"\n'
        "poll_interval = 0.01\n"
        "\n[retry]\ninitial_backoff_s = 0.01\n"
        "\n[jobs]\nbackend = \"sqlite\"\n"
        f'path = "{(tmp_path / "jobs.db").as_posix()}"\n'
        "\n[cache]\nbackend = \"off\"\n",
        encoding="utf-8")
    return path


def cli(*args: str, cfg: Path, expect: int = 0) -> dict:
    env = {**os.environ, ENV_KEY: API_KEY}
    proc = subprocess.run([sys.executable, "-m", "imagegen", *args, "--json", "--config", str(cfg)],
                          capture_output=True, text=True, env=env, timeout=60, cwd=cfg.parent)
    assert proc.returncode == expect, proc.stderr + proc.stdout
    assert API_KEY not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def cfg_for(start, tmp_path):
    def make(**options):
        emulator, server = start(**options)
        return emulator, server, write_config(tmp_path, server.base_url)
    return make


def test_generate(cfg_for, tmp_path, mode):
    emulator, _, cfg = cfg_for(mode=mode)
    out = cli("generate", "a red fox", "--provider", "nanobanana2", "--aspect-ratio", "16:9", "-n", "2",
              "--out", str(tmp_path / "out"), cfg=cfg)
    assert out["provider"] == "nanobanana2" and out["model"] == "nano-banana-2"
    assert out["cost"] == {"usd": pytest.approx(0.078), "credits": 8, "estimated": False}
    assert [(i["width"], i["height"]) for i in out["images"]] == [(67, 38), (67, 38)]
    assert all(Path(i["path"]).is_file() for i in out["images"])
    assert emulator.counters.calls["POST /api/v1/generate"] == 1


def test_edit_blend(cfg_for, tmp_path, png, jpeg):
    emulator, _, cfg = cfg_for()
    (tmp_path / "a.png").write_bytes(png)
    (tmp_path / "b.jpg").write_bytes(jpeg)
    out = cli("edit", "blend these two", "-i", str(tmp_path / "a.png"), "-i", str(tmp_path / "b.jpg"),
              "--blend", "-o", "blend_strength=0.7", "--provider", "nanobanana2",
              "--out", str(tmp_path / "out"), cfg=cfg)
    assert len(out["images"]) == 1 and out["cost"]["credits"] == 4
    assert emulator.requests[-1]["path"] == "/blend"
    assert emulator.requests[-1]["fields"]["blend_strength"] == "0.7"


def test_edit_two_images_without_blend_is_refused(cfg_for, tmp_path, png):
    emulator, _, cfg = cfg_for()
    (tmp_path / "a.png").write_bytes(png)
    out = cli("edit", "x", "-i", str(tmp_path / "a.png"), "-i", str(tmp_path / "a.png"),
              "--provider", "nanobanana2", cfg=cfg, expect=2)
    assert out["error"]["type"] == "InvalidRequestError" and "blend" in out["error"]["message"]
    assert emulator.counters.calls.get("total", 0) == 0


def test_status_of_a_running_then_finished_job(cfg_for, tmp_path):
    emulator, server, cfg = cfg_for(mode="async", ticks=2)
    with Client(config(server)) as client:
        job = client.submit("a lighthouse", provider="nanobanana2")
    first = cli("status", job.id, "--out", str(tmp_path / "out"), cfg=cfg)
    assert (first["job_id"], first["status"], first["result"]) == (job.id, "running", None)
    second = cli("status", job.id, "--out", str(tmp_path / "out"), cfg=cfg)
    assert second["status"] == "succeeded" and second["result"]["cost"]["credits"] == 4
    assert Path(second["result"]["images"][0]["path"]).is_file()
    assert emulator.counters.calls["GET /api/v1/status/{job_id}"] == 2


def test_status_of_a_cli_generated_job_comes_from_the_job_store(cfg_for, tmp_path):
    emulator, _, cfg = cfg_for(mode="async")
    made = cli("generate", "a fox", "--provider", "nanobanana2", "--out", str(tmp_path / "out"), cfg=cfg)
    shown = cli("status", made["job_id"], cfg=cfg)
    assert shown["status"] == "succeeded" and shown["job_id"] == made["job_id"]


def test_provider_error_exit_code_and_json(cfg_for):
    emulator, _, cfg = cfg_for(balances={API_KEY: 0})
    out = cli("generate", "a fox", "--provider", "nanobanana2", cfg=cfg, expect=3)
    assert out["error"]["type"] == "InsufficientCreditsError" and out["error"]["status_code"] == 402
