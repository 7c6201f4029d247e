"""The README's vendor-batch and session tour runs as written, against the built-in emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def _snippet() -> str:
    section = README.read_text(encoding="utf-8").split("### Vendor batches at half price, and edit sessions", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the section has a python snippet"
    return match.group(1)


def test_the_tour_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_snippet(), str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    batch, standard = (float(v) for v in re.findall(r"\$([0-9.]+)", printed[0]))
    assert batch == pytest.approx(standard / 2, abs=0.01) and batch > 0
    assert printed[1].startswith("20 images for $") and printed[1].endswith("failed: []")
    assert "gemini:session-" in printed[2] and "now add snow" in printed[2]
    assert (tmp_path / "cottage.jpg").stat().st_size > 0
