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
