"""A process that forks while a sync ``Client`` is open: the child exits (it does not try to
close its parent's client, whose loop thread it does not have)."""

from __future__ import annotations

import subprocess
import sys

FORKS = """
import multiprocessing
from imagegen import Client

client = Client({"jobs": {"backend": "memory"}, "cache": {"backend": "off"}, "ledger": {"backend": "off"}})
client.estimate("a fox", provider="gemini")  # the client behind the facade is running
child = multiprocessing.get_context("fork").Process(target=lambda: None)
child.start()
child.join(20)
print(child.exitcode)
client.close()
"""


def test_a_forked_child_exits_without_closing_its_parents_client():
    out = subprocess.run([sys.executable, "-c", FORKS], capture_output=True, text=True, timeout=60,
                         env={"GEMINI_API_KEY": "k", **__import__("os").environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"  # None: the child hung at exit
