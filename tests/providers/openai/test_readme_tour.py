"""The README's cross-vendor section runs as written, against the built-in emulators."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def _snippet() -> str:
    section = README.read_text(encoding="utf-8").split("### Across vendors: OpenAI Images", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, "the section has a python snippet"
    return match.group(1)


def test_the_cross_vendor_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(_snippet(), str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["[('gemini', 'skipped'), ('openai', 'succeeded')]", "PartialImage", "PartialImage",
                       "ImageResult"]
