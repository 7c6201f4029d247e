"""The CLI in a real subprocess, through a real installed plugin."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args, config=None, cwd=None):
    cmd = [sys.executable, "-m", "imagegen", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture
def config(tmp_path, tinyplug):
    path = tmp_path / "imagegen.toml"
    path.write_text('default = "tinyplug"\n[providers.tinyplug]\nmodel = "tiny-1"\n'
                    f'[jobs]\npath = "{tmp_path / "jobs.db"}"\n')
    return path


def test_generate_json_has_every_field(config, tmp_path):
    out = tmp_path / "out"
    proc = run("generate", "a fox", "--n", "3", "--size", "M", "--json", "--out", str(out), config=config)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload) >= {"provider", "model", "job_id", "images", "cost", "usage", "latency_s", "cached",
                            "attempts"}
    assert payload["provider"] == "tinyplug" and payload["model"] == "tiny-1"
    assert len(payload["images"]) == 3
    for image in payload["images"]:
        assert set(image) >= {"path", "mime_type", "width", "height", "sha256"}
        assert (image["width"], image["height"], image["mime_type"]) == (64, 64, "image/png")
        assert (out / image["path"].rsplit("/", 1)[-1]).exists()
    assert payload["cost"] == {"usd": pytest.approx(0.045), "credits": None, "estimated": False}
    assert payload["attempts"][0]["outcome"] == "succeeded"


@pytest.mark.parametrize("args,code,error_type", [
    (["generate", "x", "--size", "XL"], 2, "UnsupportedFeatureError"),
    (["generate", "   "], 2, "InvalidRequestError"),
    (["generate", "x", "--provider", "ghost"], 2, "UnknownProviderError"),
    (["generate", "[[rate_limit]]", "--timeout", "1"], 3, "RateLimitError"),  # its 2 s hint is past the deadline
    (["generate", "[[refuse]]"], 3, "ContentPolicyError"),
    (["status", "tinyplug:none"], 2, "JobNotFoundError"),
    (["generate", "x", "--option", "novalue"], 2, "InvalidRequestError"),
])
def test_failures_print_one_error_object_and_exit_code(config, args, code, error_type):
    proc = run(*args, "--json", config=config)
    assert proc.returncode == code, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == error_type
    assert set(error) == {"type", "message", "provider", "status_code", "retryable", "retry_after"}
    assert error["message"]


def test_rate_limit_error_carries_its_hint(config):
    # A 2 s hint past a 1 s deadline ends the call at once (the retry loop does not wait it out).
    error = json.loads(run("generate", "[[rate_limit]]", "--timeout", "1", "--json", config=config).stdout)["error"]
    assert error["retryable"] is True and error["retry_after"] == 2.0 and error["status_code"] == 429


def test_bad_config_exits_2(tmp_path, tinyplug):
    path = tmp_path / "bad.toml"
    path.write_text("colour = 1\n")
    proc = run("generate", "x", "--json", config=path)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["type"] == "ConfigurationError"


def test_status_and_wait_from_another_process(config, tmp_path):
    first = json.loads(run("generate", "kept", "--json", "--out", str(tmp_path / "a"), config=config).stdout)
    status = json.loads(run("status", first["job_id"], "--json", "--out", str(tmp_path / "b"),
                            config=config).stdout)
    assert status["status"] == "succeeded" and status["job_id"] == first["job_id"]
    assert status["result"]["images"][0]["sha256"] == first["images"][0]["sha256"]
    waited = json.loads(run("wait", first["job_id"], "--json", "--out", str(tmp_path / "c"), config=config).stdout)
    assert waited["images"][0]["sha256"] == first["images"][0]["sha256"]


def test_edit_and_estimate(config, tmp_path):
    src = json.loads(run("generate", "src", "--json", "--out", str(tmp_path), config=config).stdout)
    path = src["images"][0]["path"]
    edited = run("edit", "bluer", "--image", path, "--json", "--out", str(tmp_path), config=config)
    assert edited.returncode == 0, edited.stderr
    assert json.loads(edited.stdout)["images"][0]["width"] == 32
    blend = run("edit", "mix", "--image", path, "--image", path, "--blend", "--json", config=config)
    assert json.loads(blend.stdout)["error"]["type"] == "UnsupportedFeatureError"  # tinyplug has no blend
    cost = json.loads(run("estimate", "x", "--n", "4", "--size", "M", "--json", config=config).stdout)
    assert cost["cost"] == {"usd": pytest.approx(0.08), "credits": None, "estimated": True}
    assert cost["priced"] == [{"provider": "tinyplug", "model": "tiny-1", "usd": pytest.approx(0.08),
                               "as_of": "2026-11-01", "source": "tinyplug test data"}]


def test_human_output(config, tmp_path):
    proc = run("generate", "x", "--out", str(tmp_path), config=config)
    assert proc.returncode == 0
    assert "provider tinyplug" in proc.stdout and "32x32 image/png" in proc.stdout


def test_batch_writes_results_as_they_come_and_resumes(config, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\na fox\na hare\n[[refuse]] a wolf\n\na bear\n")
    out = tmp_path / "batch"
    first = run("batch", str(prompts), "--concurrency", "2", "--out", str(out), "--json", config=config)
    assert first.returncode == 3  # one item failed, the others went on
    summary = json.loads(first.stdout)
    assert (summary["total"], summary["succeeded"], summary["failed"], summary["skipped"]) == (4, 3, 1, 0)
    lines = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == [0, 1, 2, 3]
    failed = [line for line in lines if line["status"] == "failed"]
    assert failed[0]["prompt"] == "[[refuse]] a wolf" and failed[0]["error"]["type"] == "ContentPolicyError"
    assert all(Path(line["images"][0]["path"]).exists() for line in lines if line["status"] == "succeeded")

    again = json.loads(run("batch", str(prompts), "--out", str(out), "--json", config=config).stdout)
    assert (again["skipped"], again["succeeded"], again["failed"]) == (3, 0, 1)


def test_jobs_lists_recent_jobs(config, tmp_path):
    made = json.loads(run("generate", "listed", "--json", "--out", str(tmp_path), config=config).stdout)
    listed = json.loads(run("jobs", "--json", config=config).stdout)["jobs"]
    assert listed[0]["job_id"] == made["job_id"] and listed[0]["prompt"] == "listed"
    assert listed[0]["status"] == "succeeded" and listed[0]["images"] == 1
    assert run("jobs", config=config).stdout.splitlines()[0].startswith(f"{made['job_id']}  succeeded  ")


def test_jobs_prunes_old_finished_jobs(config, tmp_path):
    made = json.loads(run("generate", "kept for now", "--json", "--out", str(tmp_path), config=config).stdout)
    kept = json.loads(run("jobs", "--json", "--prune-older-than", "1", config=config).stdout)
    assert kept["pruned"] == 0 and kept["jobs"][0]["job_id"] == made["job_id"]
    gone = json.loads(run("jobs", "--json", "--prune-older-than", "0", config=config).stdout)
    assert gone == {"pruned": 1, "jobs": []}
    refused = run("jobs", "--prune-older-than", "-1", config=config)
    assert refused.returncode == 2 and "--prune-older-than" in refused.stderr
