from __future__ import annotations

import inspect
import subprocess
import sys

import imagegen.testing


def test_all_is_sorted_and_complete() -> None:
    public = {name for name, value in vars(imagegen.testing).items()
              if not name.startswith("_") and not inspect.ismodule(value)}  # submodules: pytest_plugin, contract
    public -= {"annotations"}  # `from __future__`
    assert imagegen.testing.__all__ == sorted(imagegen.testing.__all__)
    assert set(imagegen.testing.__all__) == public


def test_public_names_are_documented_and_live_in_the_package() -> None:
    for name in imagegen.testing.__all__:
        member = getattr(imagegen.testing, name)
        assert member.__module__ == "imagegen.testing", name
        assert inspect.getdoc(member), f"{name} has no docstring"
        if inspect.isclass(member):
            for attr, value in vars(member).items():
                if not attr.startswith("_") and callable(value):
                    assert inspect.getdoc(value), f"{name}.{attr} has no docstring"


def test_import_imagegen_does_not_load_the_emulator_kit() -> None:
    code = (
        "import sys, imagegen; "
        "loaded = [m for m in ('starlette', 'uvicorn', 'imagegen.testing') if m in sys.modules]; "
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
