"""Recording against the emulators: secrets filtered everywhere, every answer timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagegen.recording import read_info
from imagegen.recording._cassette import interactions
from imagegen.testing import LatencyModel, serve

from .conftest import GEMINI_KEY, GEMINI_LATENCY_S, WIREFLOW_KEY, records_wireflow_in_real_time


def test_gemini_cassette_holds_no_key_and_times_every_answer(gemini_cassette: Path) -> None:
    text = gemini_cassette.read_text(encoding="utf-8")
    assert GEMINI_KEY not in text and "x-goog-api-key" not in text.lower() and "key=" not in text
    assert "<FILTERED>" in text  # the prompt that quoted the key
    recorded = interactions(gemini_cassette)
    assert len(recorded) == 3
    for exchange in recorded:
        assert GEMINI_LATENCY_S <= exchange["response"]["elapsed_s"] < GEMINI_LATENCY_S + 1.0
        assert exchange["request"]["uri"].startswith("http://127.0.0.1:8701/")


def test_metadata_says_how_to_replay(gemini_cassette: Path) -> None:
    info = read_info(gemini_cassette)
    assert info is not None and info.time_scale == 1.0 and info.source == "emulator"
    assert info.requests[0]["prompt"] == "a red fox"
    assert info.config["providers"]["gemini"] == {"base_url": "http://127.0.0.1:8701"}
    assert [o["outcome"] for o in info.outcomes] == ["ImageResult", "ImageResult", "ContentPolicyError"]


@records_wireflow_in_real_time
def test_wireflow_cassette_keeps_the_poll_sequence_timed(wireflow_cassette: Path) -> None:
    text = wireflow_cassette.read_text(encoding="utf-8")
    assert WIREFLOW_KEY not in text and "bearer" not in text.lower()
    recorded = interactions(wireflow_cassette)
    polls = [e for e in recorded if e["request"]["uri"].endswith("/poll")]
    assert len(polls) >= 2 and all("elapsed_s" in e["response"] for e in recorded)
    assert read_info(wireflow_cassette).time_scale == 0.02


def test_record_cli_with_env_key_and_a_prompts_file(tmp_path: Path) -> None:
    """`imagegen record` in a subprocess: the key comes from the environment and never lands on disk."""
    from imagegen_nanobanana2.emulator import create_emulator

    key = "nb2_live_secret_from_env_98765"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text('# comment\na red fox\n{"prompt": "a blue hare", "aspect_ratio": "16:9"}\n')
    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.04, balances={key: 100})
    with serve(emulator) as server:
        config = tmp_path / "imagegen.toml"
        config.write_text(f'[providers.nanobanana2]\nbase_url = "{server.base_url}"\n'
                          'api_key = "env:NB2_TEST_KEY"\n[jobs]\nbackend = "memory"\n')
        out = tmp_path / "out"
        proc = subprocess.run([sys.executable, "-m", "imagegen", "record", "--provider", "nanobanana2",
                               "--prompts", str(prompts), "--out", str(out), "--config", str(config), "--json"],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "NB2_TEST_KEY": key})
    assert proc.returncode == 0, proc.stderr
    written = json.loads(proc.stdout)["cassettes"]
    assert [w["outcome"] for w in written] == ["ImageResult", "ImageResult"]
    for entry in written:
        text = Path(entry["cassette"]).read_text(encoding="utf-8")
        assert key not in text and "authorization" not in text.lower()
        data = yaml.safe_load(text)
        assert all(e["response"]["elapsed_s"] >= 0 for e in data["interactions"])
    assert read_info(written[1]["cassette"]).requests[0]["aspect_ratio"] == "16:9"


def test_a_plain_vcrpy_cassette_has_no_info() -> None:
    shipped = Path(__file__).resolve().parents[2] / "cassettes"
    assert all(read_info(p) is not None for p in shipped.glob("*/*.yaml"))
    with pytest.raises(FileNotFoundError):
        read_info(shipped / "missing.yaml")
