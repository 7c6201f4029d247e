"""Fixtures for core tests: a real third-party plugin distribution, installed for the session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagegen._plugins import registry

PLUGIN_SOURCE = Path(__file__).parent / "plugin_dist"


@pytest.fixture(scope="session")
def tinyplug_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install ``imagegen-tinyplug`` into a directory of its own, as pip would."""
    target = tmp_path_factory.mktemp("site-packages")
    build = tmp_path_factory.mktemp("plugin-build") / "src"
    subprocess.run(["cp", "-r", str(PLUGIN_SOURCE), str(build)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(build)],
        check=True, capture_output=True, text=True,
    )
    assert (target / "imagegen_tinyplug").is_dir()
    return target


@pytest.fixture
def tinyplug(tinyplug_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the installed plugin visible to this process's entry-point discovery."""
    monkeypatch.syspath_prepend(str(tinyplug_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tinyplug_site), os.environ.get("PYTHONPATH", "")]))
    registry.reset()
    yield tinyplug_site
    registry.reset()
    sys.modules.pop("imagegen_tinyplug", None)
