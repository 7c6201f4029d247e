"""The public surface as a type checker sees it: a user's script, checked with ``mypy --strict``.

mypy runs in-process with the project's own configuration, so it shares the cache that
``scripts/test`` warmed a moment earlier (a cold run takes ~20 s, a warm one ~1 s).
"""

from __future__ import annotations

import textwrap
from importlib import resources
from pathlib import Path

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
            for item in client.stream("a fox", partial_images=2):
                reveal_type(item)
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


def test_a_user_script_type_checks_strictly_and_sees_real_types(tmp_path: Path) -> None:
    lines = _mypy(tmp_path, good=GOOD)
    assert lines[-1].startswith("Success"), "\n".join(lines)
    revealed = [line.split("Revealed type is ", 1)[1] for line in lines if "Revealed type" in line]
    assert revealed == ['"imagegen._models.ImageResult"', '"imagegen._models.ImageResult"',
                        '"imagegen._streaming.PartialImage | imagegen._models.ImageResult"']


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
