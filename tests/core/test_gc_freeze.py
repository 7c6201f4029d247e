"""The first provider a process makes freezes the objects alive then (see benchmarks/gc_pauses.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import gc, json
from imagegen import AsyncClient
client = AsyncClient({"providers": {"gemini": {"api_key": "k"}}, "jobs": {"backend": "memory"},
                      "cache": {"backend": "off"}, "ledger": {"backend": "off"}})
before = gc.get_freeze_count()
client.provider("gemini")
print(json.dumps([before, gc.get_freeze_count()]))
"""


@pytest.mark.parametrize("setting", [None, "0"])
def test_the_first_provider_freezes_start_up_objects_unless_told_not_to(setting):
    env = {k: v for k, v in os.environ.items() if k != "IMAGEGEN_GC_FREEZE"}
    if setting is not None:
        env["IMAGEGEN_GC_FREEZE"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    before, after = json.loads(out.stdout)
    assert before == 0
    assert (after > 10_000) if setting is None else (after == 0)


AFTER_A_CALL = """
import gc, json, sys
from imagegen import Client
from imagegen.testing import LatencyModel, serve
from imagegen_gemini.emulator import create_emulator

with serve(create_emulator(latency=LatencyModel.none(), image_scale=0.02)) as server:
    with Client({"providers": {"gemini": {"base_url": server.base_url, "api_key": "k"}}, "jobs": {"backend": "memory"},
                 "cache": {"backend": "off"}, "ledger": {"backend": "off"}}) as client:
        client.provider("gemini")
        made = gc.get_freeze_count()
        sdk_before = "google.genai" in sys.modules
        client.generate("a fox", provider="gemini")
        print(json.dumps([sdk_before, made, gc.get_freeze_count(), gc.get_threshold()[0]]))
"""


@pytest.mark.parametrize("setting", [None, "0"])
def test_the_first_call_freezes_what_the_provider_imported_for_it(setting):
    env = {k: v for k, v in os.environ.items() if k != "IMAGEGEN_GC_FREEZE"}
    if setting is not None:
        env["IMAGEGEN_GC_FREEZE"] = setting
    out = subprocess.run([sys.executable, "-c", AFTER_A_CALL], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sdk_before, made, after, young = json.loads(out.stdout.strip().splitlines()[-1])
    assert not sdk_before  # google-genai is imported by the first call, after the first freeze
    assert (after > made + 10_000) if setting is None else (after == made == 0)
    # Young collections made rarer (calls in flight outlive them: see imagegen._gc), unless told not to.
    assert young == (10_000 if setting is None else 700)


def test_a_young_threshold_the_program_chose_is_kept():
    env = {k: v for k, v in os.environ.items() if k != "IMAGEGEN_GC_FREEZE"}
    script = "import gc; gc.set_threshold(2000, 10, 10)\n" + AFTER_A_CALL
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])[3] == 2000
