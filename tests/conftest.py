"""Test-wide guards: nothing reaches the internet, nothing touches the user's files.

Every socket connection to a non-loopback address fails, and so does resolving
any host name other than localhost, so a test cannot call a real provider even by
accident. Each test gets its own data directory and no user config file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost", "testserver"}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlockedError(OSError):
    """Raised when a test tries to reach a non-loopback host."""


def _is_loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _check(address: object) -> None:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        raise NetworkBlockedError(f"tests may only connect to loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if host is not None and not _is_loopback(host):
        raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {host!r} (network blocked)")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo  # type: ignore[assignment]


def pytest_configure(config: pytest.Config) -> None:
    # Session-scoped fixtures run before the per-test isolation below: give them a data and
    # config home of their own too, never the user's (nor one another worktree's run shares).
    home = Path(tempfile.mkdtemp(prefix="imagegen-session-"))
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))
    os.environ["IMAGEGEN_DATA_DIR"] = str(home / "data")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    os.environ.pop("IMAGEGEN_CONFIG", None)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("imagegen-home")
    monkeypatch.setenv("IMAGEGEN_DATA_DIR", str(home / "data"))
    monkeypatch.delenv("IMAGEGEN_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "WIREFLOW_API_KEY", "NANO_BANANA_API_KEY",
                "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI", "IMAGEGEN_DEFAULT",
                "IMAGEGEN_LOAD_PLUGINS", "IMAGEGEN_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port (scripts/test installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; run `bash scripts/test`, which installs it")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


#: Fixtures that start a real redis-server: the tests using them are marked ``redis``.
_REDIS_FIXTURES = frozenset({"redis_url", "own_redis"})
#: Long tests, marked ``slow`` so that ``pytest -m "not slow"`` is a quick loop (they still run
#: in the default, CI, run): the soaks, the kill -9 crash runs, fleets of worker processes, the
#: example plugin's own suite, the parser fuzz, the every-output secret sweep...
_SLOW_PATHS = ("tests/soak/", "tests/crash/", "tests/fleet/", "tests/cli/", "tests/contract/test_example.py",
               "tests/hostile/test_parser_fuzz.py", "tests/security/test_secrets.py")
#: ...and every test that runs the CLI or other processes, by a whole word of its file or test
#: name (``test_cli.py``, ``..._from_another_process``; not ``test_client.py``): each spends
#: seconds starting interpreters.
_SLOW_WORDS = frozenset({"cli", "process", "processes", "readme"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = config.rootpath
    for item in items:
        if _REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.redis)
        path = item.path.relative_to(root).as_posix()
        words = set(re.split(r"[^a-z0-9]+", f"{path.rsplit('/', 1)[-1].removesuffix('.py')} {item.name}".lower()))
        if path.startswith(_SLOW_PATHS) or words & _SLOW_WORDS:
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # In parallel runs the long tests go first (every worker sorts alike, so their collections
        # still match): the quick ones then fill the gaps, instead of one minute-long test
        # starting last and running alone while the other workers sit idle. The serial group
        # goes last: it runs once the others are done (tests/_serial_last.py).
        items.sort(key=lambda item: (_in_serial_group(item), item.get_closest_marker("slow") is None))


def _in_serial_group(item: pytest.Item) -> bool:
    return any(mark.args[:1] == ("serial",) for mark in item.iter_markers("xdist_group"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadgroup`` (what scripts/test asks for), with the ``serial`` group run last and alone."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from ._serial_last import SerialLastScheduling

    return SerialLastScheduling(config, log)
