"""`imagegen bench` puts a vendor batch's cost per image next to the same model's standard calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagegen.cli import app, command

GEMINI = Path(__file__).resolve().parents[2] / "cassettes" / "gemini"
LITE = "gemini-3.1-flash-lite-image"


def test_batch_and_standard_cost_per_image_side_by_side() -> None:
    command()  # loads every command module onto app
    result = CliRunner().invoke(app, ["bench", "--json", "--speed", "500", str(GEMINI)])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in json.loads(result.output)["rows"]}
    standard, batch = rows[LITE], rows[f"{LITE} (vendor batch)"]
    assert batch["calls"] == 5 and batch["succeeded"] == 5  # two cassettes: inline (2) and file (3)
    assert batch["cost_per_image"]["actual_usd"] == pytest.approx(standard["cost_per_image"]["actual_usd"] / 2)
    assert batch["cost_per_image"]["estimated_usd"] == pytest.approx(standard["cost_per_image"]["estimated_usd"] / 2)
    # The session cassette replays its three turns through a session.
    assert rows["gemini-3-pro-image"]["calls"] >= 3
