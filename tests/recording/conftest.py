"""Fixtures for recording tests: emulators on loopback and cassettes recorded from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegen.recording import record_cassette
from imagegen.testing import LatencyModel, serve

GEMINI_KEY = "gemini-secret-recording-key-0123456789"
WIREFLOW_KEY = "sk-wireflow-secret-recording-key-0123"
#: Every Gemini answer takes this long on the emulator (real time: time_scale 1).
GEMINI_LATENCY_S = 0.12


def gemini_config(base_url: str) -> dict:
    return {"providers": {"gemini": {"base_url": base_url, "api_key": GEMINI_KEY}}, "cache": {"backend": "off"}}


@pytest.fixture(scope="session")
def gemini_cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two generations and a refusal, recorded in real time from the Gemini emulator."""
    from imagegen_gemini.emulator import create_emulator

    path = tmp_path_factory.mktemp("cassettes") / "gemini.yaml"
    emulator = create_emulator(latency=LatencyModel(base=GEMINI_LATENCY_S, scale=1.0), image_scale=0.05,
                               api_keys={GEMINI_KEY})
    with serve(emulator) as server:
        record_cassette(path, gemini_config(server.base_url),
                        ["a red fox", f"a hare holding a sign that says {GEMINI_KEY}",
                         "x [[IMAGE_SAFETY]]"])
    return path


#: The Wireflow cassette is recorded in real time, 50x fast: the emulator's job lasts 0.12 s and
#: the recording must catch it still running at its first poll. Tests that use it run after the
#: parallel part of a run, alone (tests/_serial_last.py): on a busy machine the first poll can
#: come after the job has finished, and the cassette then holds one poll instead of several.
records_wireflow_in_real_time = pytest.mark.xdist_group("serial")


@pytest.fixture(scope="session")
def wireflow_cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A polled Wireflow job, recorded from the emulator sped up 50 times (time_scale 0.02)."""
    from imagegen_wireflow.emulator import create_emulator

    path = tmp_path_factory.mktemp("cassettes") / "wireflow.yaml"
    emulator = create_emulator(latency=LatencyModel(base=6.0, scale=0.02), output_max_side=32)
    with serve(emulator) as server:
        config = {"providers": {"wireflow": {"base_url": server.base_url, "api_key": WIREFLOW_KEY,
                                             "poll_schedule": [0.02, 1.5, 0.2], "persist_workflows": False}},
                  "cache": {"backend": "off"}}
        record_cassette(path, config, ["a lighthouse in fog"], time_scale=0.02)
    return path
