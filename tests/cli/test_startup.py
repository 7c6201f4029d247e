"""An instant command: help, --version and argument errors never import the client.

The timing itself is a benchmark (``python -m benchmarks.import_time``); what a test can hold
for good is the cause: the modules ``imagegen --help`` loads. A command module that imports
the client (or pydantic, httpx, rich, plugins) at module level fails here, naming it.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import imagegen
from imagegen.cli import COMMAND_MODULES

#: What a start-up must not load: the client and everything heavy it stands on. (pydantic is not
#: here: typer >= 0.20 converts option values with it, so an argument error loads it whatever we do.)
HEAVY = ("imagegen._client", "imagegen._models", "imagegen._config", "imagegen._plugins", "imagegen.testing",
         "imagegen.recording", "asyncio", "httpx", "pydantic_settings", "pluggy", "rich", "PIL", "tenacity",
         "starlette", "uvicorn", "vcr", "google.genai")

_PROBE = """
import sys
from imagegen.cli import main
try:
    main({argv!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("\\nLOADED:" + ",".join(heavy) + "\\n")
"""


def loaded_by(*argv: str) -> tuple[list[str], str]:
    code = _PROBE.format(argv=list(argv), heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "80", "PATH": ""})
    loaded = proc.stderr.rsplit("LOADED:", 1)[1].strip()
    return [m for m in loaded.split(",") if m], proc.stdout + proc.stderr


def commands() -> list[list[str]]:
    """Every command (and ``cache`` subcommand) the help lists."""
    out = subprocess.run([sys.executable, "-m", "imagegen", "--help"], capture_output=True, text=True,
                         env={"COLUMNS": "80", "PATH": ""}, timeout=60).stdout
    names = re.findall(r"^  (\w[\w-]*)  ", out.split("Commands:", 1)[1], re.M)
    assert {"generate", "edit", "batch", "bench", "record", "cache"} <= set(names), out
    found = [[name] for name in names if name != "cache"]
    return [*found, ["cache", "stats"], ["cache", "clear"], ["cache", "prune"], ["batch", "status"]]


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["generate"], ["generate", "x", "--n", "many"],
                                  ["nonsense"], ["batch", "--help"], ["cache", "--help"]])
def test_start_up_imports_nothing_heavy(argv: list[str]) -> None:
    loaded, output = loaded_by(*argv)
    assert loaded == [], f"imagegen {' '.join(argv)} imported {loaded}\n{output}"


def test_every_command_module_is_light_and_every_help_is_too() -> None:
    assert set(COMMAND_MODULES) >= {"_batch", "_bench", "_cost", "_extra"}
    for argv in commands():
        loaded, output = loaded_by(*argv, "--help")
        assert loaded == [], f"imagegen {' '.join(argv)} --help imported {loaded}"
        assert "Usage:" in output


def test_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "imagegen", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"imagegen {imagegen.__version__} (Python ")


@pytest.mark.parametrize("columns", [80, 200])
def test_help_is_clean(columns: int) -> None:
    """No type tags (``<bool>``, ``<str>``), no literal reST or Markdown backticks, in any help."""
    for argv in [[], *commands()]:
        proc = subprocess.run([sys.executable, "-m", "imagegen", *argv, "--help"], capture_output=True, text=True,
                              env={"COLUMNS": str(columns), "PATH": ""}, timeout=60)
        assert proc.returncode == 0, proc.stderr
        text = proc.stdout
        tags = re.findall(r"<(?:bool|str|int|float|path|list\[[^\]]*\]|text|integer)>", text, re.I)
        assert not tags, f"imagegen {' '.join(argv)} --help shows {tags}:\n{text}"
        assert "`" not in text, f"imagegen {' '.join(argv)} --help shows backticks:\n{text}"
        assert max(len(line) for line in text.splitlines()) <= columns, text


def test_argument_errors_are_short_and_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "imagegen", "generate", "x", "--n", "many"], capture_output=True,
                          text=True, env={"COLUMNS": "80", "PATH": ""}, timeout=60)
    assert proc.returncode == 2
    assert "Invalid value for '--n' / '-n'" in proc.stderr or "Invalid value for '-n' / '--n'" in proc.stderr
    assert "Traceback" not in proc.stderr


_MODELS_BUILT = """
import sys
import pydantic
from imagegen import *  # every public name, so the client and every module it imports
built = sorted(f"{name}.{value.__qualname__}" for name, module in list(sys.modules.items())
               if name.startswith("imagegen") for value in vars(module).values()
               if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and value.__pydantic_complete__)
print(",".join(built))
"""


def test_importing_the_client_builds_no_model_validator() -> None:
    """Every model is ``defer_build``: a model built at import (one without it, or an instance
    made at module level) costs its schema build on every start of every program."""
    proc = subprocess.run([sys.executable, "-c", _MODELS_BUILT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"built at import: {proc.stdout.strip()}"
