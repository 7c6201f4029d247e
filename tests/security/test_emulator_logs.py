"""``imagegen emulate`` logs every request, but never the value of a ``?key=`` parameter."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx

from imagegen.testing._server import redact_url

SECRET = "AIzaSyEMULATORLOG-leak-check-71c2"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_emulator_access_log_redacts_key_query_values():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "imagegen", "emulate", "gemini", "--port", str(port),
                             "--latency", "0", "--option", "image_scale=0.02"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.05)
        body = {"contents": [{"parts": [{"text": "a fox"}]}]}
        url = f"http://127.0.0.1:{port}/v1beta/models/gemini-2.5-flash-image:generateContent"
        answer = httpx.post(f"{url}?alt=json&key={SECRET}", json=body, timeout=30)
        assert answer.status_code == 200
        httpx.post(f"{url}?key={SECRET}&alt=json", json={}, timeout=30)  # an error answer is logged too
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert "generateContent?alt=json&key=REDACTED" in output, output
    assert "key=REDACTED&alt=json" in output, output
    assert SECRET not in output


def test_redact_url_keeps_everything_but_credentials():
    assert redact_url("/x?alt=json&key=abc&api_key=def#frag") == "/x?alt=json&key=REDACTED&api_key=REDACTED#frag"
    assert redact_url("/x?monkey=1&keyboard=2") == "/x?monkey=1&keyboard=2"
    assert redact_url("/x?ACCESS_TOKEN=t") == "/x?ACCESS_TOKEN=REDACTED"
