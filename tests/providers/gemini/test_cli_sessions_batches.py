"""Edit sessions and vendor batches through the CLI: every command its own process, one SQLite
job store and ledger between them, the emulator in this process."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import API_KEY
from .test_cli import cli


def _config(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "imagegen.toml"
    path.write_text(
        "[providers.gemini]\n"
        'api_key = "env:GEMINI_API_KEY"\n'
        f'base_url = "{base_url}"\n'
        'model = "gemini-3.1-flash-lite-image"\n'
        f'\n[jobs]\nbackend = "sqlite"\npath = "{(tmp_path / "jobs.sqlite3").as_posix()}"\n'
        f'\n[ledger]\nbackend = "sqlite"\npath = "{(tmp_path / "ledger.sqlite3").as_posix()}"\n'
        '\n[cache]\nbackend = "off"\n', encoding="utf-8")
    return path


def _signatures(content: dict) -> list[str]:
    return [p["thoughtSignature"] for p in content["parts"] if "thoughtSignature" in p]


def test_a_session_across_three_commands(server, emulator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, server.base_url)
    first = cli("generate", "a cottage in a meadow", "--session", "new", "--provider", "gemini",
                "--out", str(tmp_path / "out"), cfg=cfg)
    session = first["session"]
    assert session["id"].startswith("gemini:session-") and session["turn"] == 0 and session["mode"] == "conversation"
    answer_one = emulator.received[-1]
    second = cli("edit", "now make the roof blue", "--session", session["id"], "--out", str(tmp_path / "out"), cfg=cfg)
    third = cli("edit", "now add snow", "--session", session["id"], "--out", str(tmp_path / "out"), cfg=cfg)
    assert (second["session"]["turn"], third["session"]["turn"]) == (1, 2)
    sent = emulator.received[-1]["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user", "model", "user"]
    assert sent[0] == answer_one["contents"][0]
    assert all(len(_signatures(c)) == 1 for c in (sent[1], sent[3]))  # Lite signs its image part
    assert third["images"] and Path(third["images"][0]["path"]).is_file()
    shown = cli("session", session["id"], cfg=cfg)
    assert [t["prompt"] for t in shown["turns"]] == ["a cottage in a meadow", "now make the roof blue", "now add snow"]
    assert shown["cost_usd"] > 0 and all(t["status"] == "succeeded" for t in shown["turns"])



def test_session_errors_are_typed(server, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from imagegen.cli import _register_more, app

    _register_more()
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    cfg = str(_config(tmp_path, server.base_url))
    missing = CliRunner().invoke(app, ["edit", "x", "--session", "gemini:session-nope", "--json", "--config", cfg])
    assert missing.exit_code == 2 and json.loads(missing.output)["error"]["type"] == "JobNotFoundError"
    bare = CliRunner().invoke(app, ["edit", "x", "--json", "--config", cfg])
    assert bare.exit_code == 2 and json.loads(bare.output)["error"]["type"] == "InvalidRequestError"


def test_a_vendor_batch_from_a_prompts_file(server, emulator, tmp_path: Path) -> None:
    cfg = _config(tmp_path, server.base_url)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"a product shot, number {i:02d}" for i in range(6)) + "\n", encoding="utf-8")
    estimate = cli("estimate", "--prompts", str(prompts), "--vendor-batch", cfg=cfg)
    assert estimate["cost"]["usd"] == estimate["standard"]["usd"] / 2 and estimate["members"] == 6
    out = tmp_path / "shots"
    submitted = cli("batch", str(prompts), "--vendor-batch", "--no-wait", "--out", str(out), cfg=cfg)
    assert submitted["pending"] == 6 and len(submitted["batches"]) == 1
    assert submitted["estimate"]["batch_usd"] == estimate["cost"]["usd"]
    shown = cli("status", submitted["batches"][0], cfg=cfg)  # one JSON object, every member in it
    assert shown["job_id"] == submitted["batches"][0] and shown["batch"]["state"] == "succeeded"
    assert [m["index"] for m in shown["members"]] == list(range(6))
    assert all(m["status"] == "succeeded" and m["error"] is None and m["cost"]["usd"] > 0
               and not m["cost"]["estimated"] for m in shown["members"])
    # Run again: the batch already sent is followed, nothing is sent twice.
    collected = cli("batch", str(prompts), "--vendor-batch", "--out", str(out), cfg=cfg)
    assert collected["succeeded"] == 6 and collected["batches"] == submitted["batches"]
    assert emulator.counters.calls["POST /{version}/models/{model}:batchGenerateContent"] == 1
    lines = [json.loads(line) for line in (out / "batch.jsonl").read_text().splitlines()]
    assert sorted(line["index"] for line in lines) == list(range(6))
    assert all(Path(line["images"][0]["path"]).is_file() for line in lines)
    again = cli("batch", str(prompts), "--vendor-batch", "--out", str(out), cfg=cfg)
    assert again["skipped"] == 6 and again["batches"] == []
    waited = cli("wait", submitted["batches"][0], "--out", str(tmp_path / "w"), cfg=cfg)
    assert len(waited["members"]) == 6 and len(waited["images"]) == 6
    assert API_KEY not in (out / "batch.jsonl").read_text()


def test_status_of_a_batch_lists_its_members(server, emulator, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from imagegen.cli import _register_more, app
    from imagegen.testing import Fault, FaultPlan

    _register_more()
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    monkeypatch.setattr(emulator.batches, "member_faults", FaultPlan.script("ok", Fault("rate_limit")))
    cfg = str(_config(tmp_path, server.base_url))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox\na hare\n", encoding="utf-8")
    submitted = CliRunner().invoke(app, ["batch", str(prompts), "--vendor-batch", "--no-wait", "--json",
                                         "--config", cfg])
    batch_id = json.loads(submitted.output)["batches"][0]
    shown = CliRunner().invoke(app, ["status", batch_id, "--config", cfg])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0].startswith(f"batch {batch_id}  state succeeded") and "1 succeeded, 1 failed" in lines[0]
    assert lines[1].startswith(f"  {batch_id}#0  succeeded  $0.0")
    assert lines[2].startswith(f"  {batch_id}#1  failed  $0.0000  RateLimitError: ")
    as_json = json.loads(CliRunner().invoke(app, ["status", batch_id, "--json", "--config", cfg]).output)
    assert [(m["status"], m["error"] and m["error"]["type"]) for m in as_json["members"]] == [
        ("succeeded", None), ("failed", "RateLimitError")]
