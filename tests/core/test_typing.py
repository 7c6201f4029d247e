"""The public surface as a type checker sees it: a user's script, checked with ``mypy --strict``
and with pyright in strict mode (what editors built on it, such as Pylance, show).

mypy runs in-process with the project's own configuration, so it shares the cache that
``scripts/test`` warmed a moment earlier (a cold run takes ~20 s, a warm one ~1 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from mypy import api as mypy_api

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
    from pathlib import Path

    from imagegen import Client, ImageResult, Job, PartialImage

    def make(path: str) -> Path:
        with Client() as client:
            result = client.generate("a coastal villa", provider="gemini", aspect_ratio="16:9", size="1K", n=1)
            reveal_type(result)
            reveal_type(client.edit("bluer", images=[b"..."], mask=None, seed=3))
            job: Job = client.submit("a fox", n=1)
            done: ImageResult = client.wait(job.id, timeout=30)
            previews: list[PartialImage] = []
            for item in client.stream("a fox", partial_images=2):
                reveal_type(item)
                if isinstance(item, PartialImage):
                    previews.append(item)
            print(done.cost, len(previews))
            return client.generate("a fox").images[0].save(path)
"""

BAD = """
    from imagegen import Client

    client = Client(config={"default": "gemini"})
    client.generate("a villa", n="two")
    client.generate("a villa", sizee="1K")
    client.wait(42)
    Client(confg=None)
"""


#: Both mypy tests share that cache (SQLite files): in a parallel run they go to one worker, one
#: after the other, so that two mypy runs never write it at once.
shares_the_mypy_cache = pytest.mark.xdist_group("mypy-cache")


def _mypy(tmp_path: Path, **scripts: str) -> list[str]:
    files = []
    for name, text in scripts.items():
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        files.append(str(path))
    out, err, _ = mypy_api.run(["--strict", "--config-file", str(ROOT / "pyproject.toml"),
                                "--cache-dir", str(ROOT / ".mypy_cache"), *files])
    assert not err, err
    return out.splitlines()


@shares_the_mypy_cache
def test_a_user_script_type_checks_strictly_and_sees_real_types(tmp_path: Path) -> None:
    lines = _mypy(tmp_path, good=GOOD)
    assert lines[-1].startswith("Success"), "\n".join(lines)
    revealed = [line.split("Revealed type is ", 1)[1] for line in lines if "Revealed type" in line]
    assert revealed == ['"imagegen._models.ImageResult"', '"imagegen._models.ImageResult"',
                        '"imagegen._streaming.PartialImage | imagegen._models.ImageResult"']


@shares_the_mypy_cache
def test_wrong_arguments_are_reported(tmp_path: Path) -> None:
    errors = [line for line in _mypy(tmp_path, bad=BAD) if ": error:" in line]
    assert len(errors) == 4, errors
    assert 'Argument "n" has incompatible type "str"; expected "int"' in errors[0]
    assert 'Unexpected keyword argument "sizee"; did you mean "size"?' in errors[1]
    assert 'incompatible type "int"; expected "str"' in errors[2]
    assert 'Unexpected keyword argument "confg"' in errors[3]


def test_packages_ship_py_typed() -> None:
    built_in = sorted(path.name for path in ROOT.glob("providers/*/imagegen_*") if path.is_dir())
    assert len(built_in) >= 3
    for package in ("imagegen", *built_in):
        assert resources.files(package).joinpath("py.typed").is_file(), package


def _pyright(tmp_path: Path, **scripts: str) -> dict[str, list[dict[str, Any]]]:
    """Diagnostics per script from ``pyright --outputjson`` in strict mode (the PyPI wheel
    bundles pyright; it runs on the machine's node, which ``scripts/test`` installs)."""
    files = {}
    for name, text in scripts.items():
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(text))
        files[str(path)] = name
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({"typeCheckingMode": "strict"}))
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no look-up of the latest release
    run = subprocess.run([sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable,
                          "-p", str(tmp_path), *files], capture_output=True, text=True, env=env, timeout=300)
    report = json.loads(run.stdout)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in scripts}
    for diagnostic in report["generalDiagnostics"]:
        found[files[diagnostic["file"]]].append(diagnostic)
    assert report["summary"]["filesAnalyzed"] == len(scripts), run.stdout[-2000:] + run.stderr[-2000:]
    return found


@pytest.mark.slow
def test_pyright_strict_sees_the_same_types_and_the_same_mistakes(tmp_path: Path) -> None:
    found = _pyright(tmp_path, good=GOOD, bad=BAD)
    good = found["good"]
    assert [d["message"] for d in good if d["severity"] == "error"] == []
    revealed = [d["message"] for d in good if d["severity"] == "information"]
    assert revealed == ['Type of "result" is "ImageResult"',
                        'Type of "client.edit("bluer", images=[b"..."], mask=None, seed=3)" is "ImageResult"',
                        'Type of "item" is "PartialImage | ImageResult"'], revealed
    errors = [(d["range"]["start"]["line"], d["message"]) for d in found["bad"] if d["severity"] == "error"]
    lines = textwrap.dedent(BAD).splitlines()
    assert sorted({lines[line].strip() for line, _ in errors}) == sorted(
        ['client.generate("a villa", n="two")', 'client.generate("a villa", sizee="1K")', "client.wait(42)",
         "Client(confg=None)"]), errors
    assert any('"sizee"' in message for _, message in errors)
