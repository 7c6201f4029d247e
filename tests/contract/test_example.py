"""The worked example plugin of docs/provider-guide.md, installed as a user would install it and
tested with its own suite: entry point, provider, emulator and the provider contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagegen.testing.contract import ProviderContract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "imagegen-acme"


@pytest.fixture(scope="module")
def acme_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install`` the example into a directory of its own (no network, no build isolation)."""
    target = tmp_path_factory.mktemp("acme-site")
    build = tmp_path_factory.mktemp("acme-build") / "src"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(build)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(build)],
                   check=True, capture_output=True, text=True)
    assert (target / "imagegen_acme" / "models.toml").is_file()
    return target


def test_the_example_plugin_passes_its_own_suite_and_the_contract(acme_site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(acme_site), os.environ.get("PYTHONPATH", "")]),
           "IMAGEGEN_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--rootdir",
                          str(EXAMPLE), str(EXAMPLE / "tests")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"=+ \d+ passed in .*=+", summary), summary  # nothing failed, skipped or xfailed
    # Every check of the contract ran, and passed, for the example (none left out).
    checks = [name for name in dir(ProviderContract) if name.startswith("test_")]
    passed = {line.split("::TestAcmeContract::")[1].split()[0] for line in run.stdout.splitlines()
              if "::TestAcmeContract::" in line and " PASSED" in line}
    assert passed == set(checks) and len(checks) >= 10, run.stdout[-3000:]


def test_the_installed_example_is_found_through_its_entry_point(acme_site: Path) -> None:
    code = ("from imagegen import Client; import imagegen_acme; "
            "c = Client({'providers': {'acme': {'api_key': 'k'}}}); "
            "print(c.providers()['acme'] is imagegen_acme.AcmeProvider, imagegen_acme.__file__)")
    env = {**os.environ, "PYTHONPATH": str(acme_site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    found, where = out.stdout.split()
    assert found == "True" and where.startswith(str(acme_site))
