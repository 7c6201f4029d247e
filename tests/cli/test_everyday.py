"""Everyday commands as a new user meets them: no config yet, estimates, files, the cache, emulators."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import API_KEYS, Cli, write_config


def test_no_config_says_where_it_goes_and_how_to_start_offline(cli: Cli) -> None:
    proc = cli("generate", "a red fox", expect=2)
    assert "UnknownProviderError" in proc.stderr
    assert "imagegen.toml" in proc.stderr and "IMAGEGEN_CONFIG" in proc.stderr
    assert "imagegen demo" in proc.stderr and "imagegen emulate" in proc.stderr
    assert 'provider="' not in proc.stderr  # no Python syntax at a shell prompt
    assert "--provider" in proc.stderr


def test_missing_key_names_the_variable_and_the_way_out(cli: Cli) -> None:
    (cli.cwd / "imagegen.toml").write_text('[providers.gemini]\napi_key = "env:MY_GEMINI_KEY"\n')
    proc = cli("generate", "a red fox", expect=2)
    assert "MY_GEMINI_KEY" in proc.stderr and "imagegen demo" in proc.stderr


def test_estimate_names_what_it_priced(cli: Cli, configured: Path) -> None:
    text = cli("estimate", "a red fox", "--provider", "gemini/gemini-3-pro-image", "--size", "2K").stdout
    assert re.match(r"estimated cost: \$0\.1\d{3} for 1 image\(s\)\n", text), text
    assert "gemini/gemini-3-pro-image" in text and "price book of 2026-" in text and "https://" in text
    payload = json.loads(cli("estimate", "a red fox", "--provider", "wireflow", "--json").stdout)
    [priced] = payload["priced"]
    assert (priced["provider"], priced["model"]) == ("wireflow", "nano_banana_2")
    assert priced["source"].startswith("https://")


def test_price_sources_are_links(configured: Path, cli80: Cli) -> None:
    listed = json.loads(cli80("providers", "--json").stdout)["providers"]
    for row in listed:
        price = row["price"]
        if price is not None:
            assert price["source"].startswith("https://"), (row["provider"], row["model"], price["source"])


def test_out_names_a_file_in_the_format_its_extension_says(cli: Cli, configured: Path) -> None:
    made = json.loads(cli("generate", "a red fox", "--out", "out/fox.png", "--json").stdout)
    fox = cli.cwd / "out" / "fox.png"
    assert made["images"][0]["path"] == "out/fox.png" and made["images"][0]["mime_type"] == "image/png"
    assert fox.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the emulator answers JPEG: converted
    edited = json.loads(cli("edit", "make it blue", "--image", "out/fox.png", "--out", "out/blue.jpg",
                            "--json").stdout)
    assert (cli.cwd / "out" / "blue.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert edited["images"][0]["mime_type"] == "image/jpeg"
    two = json.loads(cli("generate", "two foxes", "--n", "2", "--out", "out/pair.webp", "--json").stdout)
    assert [Path(i["path"]).name for i in two["images"]] == ["pair-1.webp", "pair-2.webp"]
    refused = cli("generate", "a red fox", "--out", "out/fox.txt", expect=2)
    assert "'.txt' names no image format" in refused.stderr and not (cli.cwd / "out" / "fox.txt").exists()


def test_image_save_writes_what_the_extension_says(tmp_path: Path) -> None:
    import io

    from PIL import Image as PILImage

    from imagegen import Image, InvalidRequestError

    buffer = io.BytesIO()
    PILImage.new("RGBA", (12, 8), (255, 0, 0, 128)).save(buffer, "PNG")
    image = Image.from_bytes(buffer.getvalue())
    assert Image.from_bytes(image.save(tmp_path / "v.jpg").read_bytes()).mime_type == "image/jpeg"
    assert Image.from_bytes(image.save(tmp_path / "v.webp").read_bytes()).mime_type == "image/webp"
    assert image.save(tmp_path / "v.png").read_bytes() == image.data  # already a PNG: the bytes as they are
    assert image.save(tmp_path / "v").read_bytes() == image.data
    with pytest.raises(InvalidRequestError, match=r"'\.pdf' names no image format"):
        image.save(tmp_path / "v.pdf")


def test_cache_stats_counts_hits(cli: Cli, tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators, extra='[cache]\nbackend = "disk"\n')
    cli("generate", "a red fox", "--out", "out")
    cli("generate", "a red fox", "--out", "out")  # a process that only hits, and never writes
    stats = json.loads(cli("cache", "stats", "--json").stdout)
    assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)
    assert "hits=1" in cli("cache", "stats").stdout


def test_emulate_does_not_claim_a_port_it_cannot_have(cli80: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli80("emulate", "gemini", "--port", str(port), expect=2, timeout=60)
    assert "emulator on" not in proc.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "--port" in proc.stderr


UNCLOSED = textwrap.dedent("""
    from imagegen import Client
    client = Client()                     # never closed, as in a short script
    res = client.generate("a red fox")
    print(res.job_id)
""")


def test_an_unclosed_client_finishes_its_writes_at_exit(cli80: Cli, configured: Path) -> None:
    env = {**os.environ, **API_KEYS}
    proc = subprocess.run([sys.executable, "-c", UNCLOSED], cwd=cli80.cwd, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "background write failed" not in proc.stderr and "cannot schedule" not in proc.stderr
    job_id = proc.stdout.strip()
    job = json.loads(cli80("status", job_id, "--json", "--out", "out").stdout)
    assert job["status"] == "succeeded" and job["result"]["images"]


def test_generate_many_takes_the_options_generate_takes(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegen import Client

    monkeypatch.chdir(configured.parent)
    for name, value in API_KEYS.items():
        monkeypatch.setenv(name, value)
    with Client() as client:
        results = client.generate_many(["a fox", "a hare"], provider="nb2", size=None, concurrency=2)
        cost = client.estimate_many(["a fox", "a hare"], provider="wireflow")
    assert [r.provider for r in results] == ["nb2", "nb2"]  # type: ignore[union-attr]
    assert set(cost.breakdown) == {"wireflow/nano_banana_2"}


def test_emulator_runs_stay_out_of_the_real_ledger(cli80: Cli, configured: Path, tmp_path: Path) -> None:
    cli80("generate", "a red fox", "--out", "out")
    spend = json.loads(cli80("cost", "--json").stdout)
    assert spend["emulated"] is True and spend["rows"][0]["calls"] == 1
    data = Path(os.environ["IMAGEGEN_DATA_DIR"])
    assert (data / "emulators" / "ledger.sqlite3").exists() and not (data / "ledger.sqlite3").exists()
    # The demo keeps its own stores too.
    cli80("demo", "--out", "demo")
    assert not (data / "ledger.sqlite3").exists() and (data / "demo" / "ledger.sqlite3").exists()
    real = tmp_path / "real"
    real.mkdir()
    (real / "imagegen.toml").write_text('[providers.gemini]\napi_key = "env:GEMINI_API_KEY"\n')
    assert json.loads(Cli(real)("cost", "--json").stdout)["rows"] == []


def test_an_emulator_config_refuses_a_real_service(configured: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagegen import Client, ConfigurationError

    monkeypatch.chdir(configured.parent)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with Client() as client, pytest.raises(ConfigurationError, match="would reach a real service"):
        client.generate("a fox", provider="openai")
