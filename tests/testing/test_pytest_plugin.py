"""The emulator_server fixture, run in a nested pytest session like a user's suite would."""

from __future__ import annotations

import socket

import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
import httpx
from imagegen.testing import Emulator, FaultPlan

pytest_plugins = ["imagegen.testing.pytest_plugin"]


def test_user_suite(emulator_server, tmp_path_factory):
    first = emulator_server(Emulator())
    second = emulator_server(Emulator(faults=FaultPlan.script("server_error", path="^/_emulator/")))
    assert first.port != second.port
    assert httpx.get(first.base_url + "/_emulator/counters").status_code == 200
    assert httpx.get(second.base_url + "/_emulator/counters").status_code == 503
    with open("ports.txt", "w") as out:
        out.write(f"{first.port} {second.port}")
'''


def test_fixture_starts_servers_and_stops_them_after_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    ports = [int(p) for p in (pytester.path / "ports.txt").read_text().split()]
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"
