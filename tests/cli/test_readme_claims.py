"""What the README says about prompt files, the demo and the testing kit, run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import Cli

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"


def test_one_prompt_file_means_the_same_to_batch_and_estimate(cli80: Cli, configured: Path) -> None:
    """A JSON line is a request's fields (not prompt text) for ``estimate --prompts`` and ``batch``."""
    (cli80.cwd / "prompts.txt").write_text(
        '# a comment, then a blank line\n\na red fox\n'
        '{"prompt": "a lighthouse", "model": "gemini-3-pro-image", "aspect_ratio": "1:1"}\n', encoding="utf-8")
    priced = json.loads(cli80("estimate", "--prompts", "prompts.txt", "--provider", "gemini", "--json").stdout)
    assert priced["requests"] == 2
    assert {(row["provider"], row["model"]) for row in priced["priced"]} == {
        ("gemini", "gemini-nano-banana-2.1"), ("gemini", "gemini-3-pro-image")}, priced
    cli80("batch", "prompts.txt", "--provider", "gemini", "--out", "shots")
    lines = [json.loads(line) for line in (cli80.cwd / "shots" / "batch.jsonl").read_text().splitlines()]
    by_prompt = {line["prompt"]: line for line in lines}
    assert set(by_prompt) == {"a red fox", "a lighthouse"}, lines
    lighthouse = by_prompt["a lighthouse"]
    image = lighthouse["images"][0]
    assert image["width"] == image["height"]  # 1:1, as the line asked (the fox has the default 16:9)
    job = json.loads(cli80("status", lighthouse["job_id"], "--json", "--out", "status").stdout)
    assert job["result"]["model"] == "gemini-3-pro-image", job


def test_the_demo_writes_to_imagegen_demo_and_says_what_it_made(cli80: Cli) -> None:
    lines = cli80("demo").stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["generate", "edit"]
    for line in lines:
        # "generate imagegen-demo/<hash>.jpg  gemini/<model>  WxH  <latency>  $<cost>"
        assert re.search(r"imagegen-demo/\S+\s+gemini/\S+\s+\d+x\d+\s.*\d.*\$0\.\d+", line), line
        assert (cli80.cwd / line.split()[1]).stat().st_size > 0


def _testing_snippet() -> str:
    """The README's ``imagegen.testing`` snippet, as printed there."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    [snippet] = [b for b in blocks if "isolated_client" in b]
    return snippet


def test_the_readme_testing_snippet_runs_its_fault_plan_on_every_run(tmp_path: Path) -> None:
    """The snippet asserts a 429 then a retry; on a second run in the same data dir it must still
    see the 429 (no cached answer), and it leaves nothing on disk."""
    data = Path(os.environ["IMAGEGEN_DATA_DIR"])
    before = sorted(data.rglob("*")) if data.exists() else []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", _testing_snippet()], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert (sorted(data.rglob("*")) if data.exists() else []) == before
    assert list(tmp_path.iterdir()) == []


FIXTURE_USER = '''
from imagegen.testing import Fault, FaultPlan
from imagegen_gemini.emulator import create_emulator

pytest_plugins = ["imagegen.testing.pytest_plugin"]


def test_user_app(emulator_server, imagegen_client):
    server = emulator_server(create_emulator(faults=FaultPlan.script(Fault("server_error"), "ok")))
    client = imagegen_client({"gemini": server})
    res = client.generate("a red fox")
    assert [a.outcome for a in res.attempts] == ["failed", "succeeded"]
'''


def test_the_imagegen_client_fixture_runs_the_fault_plan_every_time_and_keeps_nothing(
        pytester: pytest.Pytester) -> None:
    """A user's suite, run twice with the same data dir: the second run is not served a cached
    answer (its fault plan runs again) and nothing is left in imagegen's directories."""
    data = Path(os.environ["IMAGEGEN_DATA_DIR"])
    before = sorted(data.rglob("*")) if data.exists() else []
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=FIXTURE_USER)
    for _ in range(2):
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert (sorted(data.rglob("*")) if data.exists() else []) == before
