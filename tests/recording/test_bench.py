"""`imagegen bench` over the shipped cassettes: offline, every provider, every metric."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from imagegen.cli import app, command

METRICS = {"provider", "model", "calls", "succeeded", "failure_rate", "fallback_rate", "latency_p50_s",
           "latency_p95_s", "polls_per_job", "requests_per_call", "bytes_per_call", "cost_per_image",
           "latencies_s"}


def bench(*args: str):
    command()  # loads every command module onto app
    return CliRunner().invoke(app, ["bench", *args])


def test_bench_json_over_the_shipped_cassettes(tmp_path: Path) -> None:
    chart = tmp_path / "bench.png"
    result = bench("--json", "--speed", "200", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["cassettes"] >= 20 and payload["skipped"] == []
    rows = payload["rows"]
    assert {row["provider"] for row in rows} == {"gemini", "nanobanana2", "openai", "wireflow"}
    for row in rows:
        assert set(row) >= METRICS, row
        assert set(row["cost_per_image"]) == {"estimated_usd", "actual_usd", "estimated_credits", "actual_credits"}
        assert 0 <= row["failure_rate"] <= 1 and row["bytes_per_call"] > 0
        if row["succeeded"]:
            assert 0 < row["latency_p50_s"] <= row["latency_p95_s"]
    polled = [row for row in rows if row["provider"] == "wireflow"]
    assert all(row["polls_per_job"] >= 2 for row in polled)
    assert all(row["polls_per_job"] == 0 for row in rows if row["provider"] in ("gemini", "openai"))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_table(tmp_path: Path) -> None:
    result = bench("--speed", "500", str(Path(__file__).resolve().parents[2] / "cassettes" / "nanobanana2"))
    assert result.exit_code == 0, result.output
    assert "nanobanana2" in result.output and "p50/p95" in result.output


def test_bench_refuses_a_folder_without_cassettes(tmp_path: Path) -> None:
    (tmp_path / "plain.yaml").write_text("interactions: []\nversion: 1\n")
    result = bench(str(tmp_path))
    assert result.exit_code == 2
