"""What ``from imagegen import Client`` loads: the facade, not the client behind it.

The time is a benchmark (benchmarks/results/import_time.md); what a test can hold for good is
the cause. A top-level import of the client (or of asyncio, httpx, pydantic) in ``imagegen._sync``
or ``imagegen/__init__`` fails here, naming the module.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Loaded by the first ``Client()``, not by the import.
DEFERRED = ("asyncio", "httpx", "pydantic", "pydantic_core", "sqlite3", "pluggy", "imagegen._client",
            "imagegen._models", "imagegen._config", "imagegen._errors", "imagegen._sessions", "imagegen._streaming")


def loaded_after(code: str) -> dict[str, bool]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps({{m: m in sys.modules for m in {DEFERRED!r}}}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_client_loads_none_of_the_client() -> None:
    loaded = loaded_after("from imagegen import Client")
    assert [m for m, present in loaded.items() if present] == []


def test_importing_the_async_client_leaves_sessions_and_streaming_to_their_calls() -> None:
    loaded = loaded_after("from imagegen import AsyncClient")
    assert loaded["imagegen._client"] and loaded["asyncio"]
    assert not loaded["imagegen._sessions"] and not loaded["imagegen._streaming"], loaded


def test_the_first_client_or_a_look_at_a_method_loads_it() -> None:
    """The cost moves to first use: ``Client()`` and ``inspect.signature`` see the real methods."""
    code = ("from imagegen import Client\nimport inspect\n"
            "sig = inspect.signature(Client.generate)\n"
            "assert 'prompt' in sig.parameters and Client.generate.__qualname__ == 'AsyncClient.generate', sig\n"
            "import imagegen\n"
            "assert imagegen.ImageResult.__module__ == 'imagegen'\n"
            "assert vars(imagegen)['ProviderError'].__module__ == 'imagegen'  # published by the load")
    loaded = loaded_after(code)
    assert all(loaded[m] for m in ("asyncio", "httpx", "pydantic", "imagegen._client")), loaded


def test_a_client_made_at_once_works() -> None:
    code = ("from imagegen import Client\n"
            "with Client({'providers': {'wireflow': {'api_key': 'k', 'base_url': 'http://127.0.0.1:9'}},"
            " 'cache': {'backend': 'off'}, 'jobs': {'backend': 'memory'}, 'ledger': {'backend': 'off'}}) as c:\n"
            "    assert c.estimate('a red fox', provider='wireflow').usd >= 0")
    loaded = loaded_after(code)
    assert loaded["imagegen._client"]


def test_an_estimate_loads_no_http_connection_layer() -> None:
    """A provider made for an estimate (no network call) builds its transport on its first
    request: neither aiohttp nor the TLS context's CA bundle is loaded before that."""
    code = ("from imagegen import Client\nimport imagegen._http as http\n"
            "with Client({'providers': {'wireflow': {'api_key': 'k', 'base_url': 'http://127.0.0.1:9'}},"
            " 'cache': {'backend': 'off'}, 'jobs': {'backend': 'memory'}, 'ledger': {'backend': 'off'}}) as c:\n"
            "    c.estimate('a red fox', provider='wireflow')\n"
            "    assert http.shared_ssl_context.cache_info().currsize == 0, 'the CA bundle was loaded'\n"
            "    assert 'aiohttp' not in sys.modules and 'httpcore' not in sys.modules, 'a transport was built'")
    loaded = loaded_after(code)
    assert loaded["imagegen._client"]
