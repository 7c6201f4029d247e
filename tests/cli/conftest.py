"""The CLI as a user runs it: a subprocess, a terminal width, a config file, emulators on loopback.

Every test here starts ``python -m imagegen`` (the console script's code) in a fresh process,
by default at ``COLUMNS=80``; ``wide`` runs the same at 200 columns. Emulators answer at once
(no latency model) so the tests spend their time in the CLI, not waiting.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagegen.testing import LatencyModel, LoopbackServer, serve

API_KEYS = {"GEMINI_API_KEY": "gemini-test-key", "WIREFLOW_API_KEY": "sk-wireflow-test-key",
            "NANO_BANANA_API_KEY": "nb2-test-key"}


@dataclass
class Cli:
    """Runs ``imagegen`` in ``cwd`` with a terminal ``columns`` wide."""

    cwd: Path
    columns: int = 80
    env: dict[str, str] | None = None

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 120,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **API_KEYS, "COLUMNS": str(self.columns), **(self.env or {}), **(extra_env or {})}
        env.pop("FORCE_COLOR", None)
        proc = subprocess.run([sys.executable, "-m", "imagegen", *args], cwd=self.cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if expect is not None:
            assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture(params=[80, 200], ids=["80-columns", "wide"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    return Cli(tmp_path, columns=request.param)


@pytest.fixture
def cli80(tmp_path: Path) -> Cli:
    return Cli(tmp_path, columns=80)


@pytest.fixture(scope="module")
def emulators() -> Iterator[dict[str, LoopbackServer]]:
    """Gemini, Wireflow and nano-banana2 emulators on loopback, answering at once."""
    from imagegen_gemini.emulator import create_emulator as gemini
    from imagegen_nanobanana2.emulator import create_emulator as nanobanana2
    from imagegen_wireflow.emulator import create_emulator as wireflow

    none = LatencyModel.none()
    with serve(gemini(latency=none)) as g, serve(wireflow(latency=none)) as w, \
            serve(nanobanana2(latency=none)) as n:
        yield {"gemini": g, "wireflow": w, "nanobanana2": n}


def write_config(directory: Path, emulators: dict[str, LoopbackServer], *, extra: str = "",
                 default: str | None = "gemini") -> Path:
    """``imagegen.toml`` in ``directory``: the three providers on the emulators, keys from the environment."""
    text = f'default = "{default}"\n' if default else ""
    text += (f'[providers.gemini]\napi_key = "env:GEMINI_API_KEY"\nbase_url = "{emulators["gemini"].base_url}"\n'
             f'[providers.wireflow]\napi_key = "env:WIREFLOW_API_KEY"\nbase_url = "{emulators["wireflow"].base_url}"\n'
             f'[providers.nb2]\nplugin = "nanobanana2"\napi_key = "env:NANO_BANANA_API_KEY"\n'
             f'base_url = "{emulators["nanobanana2"].base_url}"\n{extra}')
    path = directory / "imagegen.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def configured(tmp_path: Path, emulators: dict[str, LoopbackServer]) -> Path:
    return write_config(tmp_path, emulators)


def whole_on_one_line(text: str, token: str) -> bool:
    return any(token in line for line in text.splitlines())


def json_lines(text: str) -> list[Any]:
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]
