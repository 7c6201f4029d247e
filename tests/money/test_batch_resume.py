"""`imagegen batch` keys every line by what it asks for: resumes, edits and twin runs pay once per prompt."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from imagegen.testing import serve

from .conftest import make_emulator

PLUGINS = {"gemini": "gemini", "nb2": "nanobanana2"}


def _config(tmp_path, name, base_url):
    path = tmp_path / "imagegen.toml"
    path.write_text(f'default = "{name}"\n[providers.{name}]\nplugin = "{PLUGINS[name]}"\nbase_url = "{base_url}"\n'
                    f'api_key = "env:TEST_KEY"\n[jobs]\npath = "{tmp_path / "jobs.sqlite3"}"\n'
                    f'[ledger]\npath = "{tmp_path / "ledger.sqlite3"}"\n[cache]\nbackend = "off"\n'
                    '[retry]\ninitial_backoff_s = 0.01\nmax_backoff_s = 0.02\n')
    return path


def _batch(config, prompts, out, *, wait=True):
    command = [sys.executable, "-m", "imagegen", "batch", str(prompts), "--out", str(out), "--concurrency", "8",
               "--json", "--config", str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TEST_KEY": "k"})
    return _finish(proc) if wait else proc


def _finish(proc):
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.mark.parametrize("name", ["gemini", "nb2"])
def test_two_batches_on_one_fifty_line_file_pay_fifty_times(tmp_path, name):
    emulator = make_emulator(name, latency=0.5)  # each run needs seconds: the two overlap
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a lighthouse in fog, take {i}\n" for i in range(50)))
    with serve(emulator) as server:
        config = _config(tmp_path, name, server.base_url)
        runs = [_batch(config, prompts, tmp_path / "out", wait=False) for _ in range(2)]
        summaries = [_finish(run) for run in runs]
    assert all(s["failed"] == 0 and s["succeeded"] + s["skipped"] == 50 for s in summaries), summaries
    # Both ran lines at the same time (else the second would have skipped all 50 as done) ...
    assert sum(s["succeeded"] for s in summaries) > 50, summaries
    # ... and every prompt was paid for once.
    refs = [c["ref"] for c in emulator.counters.charges]
    assert len(refs) == len(set(refs)) == 50


def test_editing_the_prompts_file_does_exactly_the_new_work(tmp_path):
    emulator = make_emulator("nb2")
    prompts = tmp_path / "prompts.txt"
    first = [f"a fox, take {i}" for i in range(5)]
    prompts.write_text("\n".join(first) + "\n")
    with serve(emulator) as server:
        config = _config(tmp_path, "nb2", server.base_url)
        assert _batch(config, prompts, tmp_path / "out")["succeeded"] == 5
        # Prepend two lines, reorder the rest, change one of them.
        edited = ["a hare", "an owl", *reversed(first[1:]), first[0] + ", at night"]
        prompts.write_text("\n".join(edited) + "\n")
        again = _batch(config, prompts, tmp_path / "out")
        assert (again["succeeded"], again["skipped"]) == (3, 4)
        assert len(emulator.counters.charges) == 8
        # Another file, the same output directory: its prompts are its own work, not skipped.
        other = tmp_path / "other.txt"
        other.write_text("a badger\na hare\n")
        third = _batch(config, other, tmp_path / "out")
        assert (third["succeeded"], third["skipped"]) == (1, 1)
    assert len(emulator.counters.charges) == 9


def test_identical_lines_are_separate_images(tmp_path):
    emulator = make_emulator("nb2")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\na fox\n")
    with serve(emulator) as server:
        config = _config(tmp_path, "nb2", server.base_url)
        summary = _batch(config, prompts, tmp_path / "out")
        assert _batch(config, prompts, tmp_path / "out")["skipped"] == 2
    lines = [json.loads(line) for line in (tmp_path / "out" / "batch.jsonl").read_text().splitlines()]
    assert summary["succeeded"] == 2 and len({line["key"] for line in lines}) == 2
    assert len(emulator.counters.charges) == 2
