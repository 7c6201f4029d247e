"""The emulator kit: local, faithful imitations of image-generation APIs for tests.

Provider emulators subclass `Emulator`; tests serve them over real loopback HTTP with
`serve` (or in-process with `asgi_transport`) and steer them with a `FaultPlan`, a
`LatencyModel` and a `FakeClock`, then assert on `Counters`. Think moto or stripe-mock::

    from imagegen.testing import FakeClock, FaultPlan, serve

    clock = FakeClock()
    emulator = MyEmulator(faults=FaultPlan.script("rate_limit", "ok"), clock=clock)
    with serve(emulator) as server:
        ...  # point a client at server.base_url; clock.advance(30) finishes its jobs
    assert emulator.counters.faults == {"rate_limit": 1}

The pieces an emulator is built from: `Reject` (answer with an error in the vendor's
envelope), `ApiKeys` with `read_bearer`/`read_header` (authentication), `JobTimeline` on the
emulator's `Clock` (asynchronous jobs), `synth_image` (real, decodable images).

What each built-in emulator (``imagegen emulate gemini|wireflow|nanobanana2``) covers, endpoint
by endpoint and client by client, is in the fidelity table of ``docs/emulators.md``.

``isolated_client({"gemini": server})`` is a client on emulators whose job store, ledger and
cache are in memory: nothing read from or left on disk, so every run starts afresh.

Pytest users can enable the ``emulator_server`` and ``imagegen_client`` fixtures with
``pytest_plugins = ["imagegen.testing.pytest_plugin"]``.

This package imports starlette and uvicorn, so ``import imagegen`` does not import it.
"""

from ._auth import ApiKeys, Credential, read_bearer, read_header
from ._clock import Clock, FakeClock, SystemClock
from ._counters import Counters
from ._emulator import Emulator
from ._faults import Fault, FaultPlan
from ._images import synth_image
from ._isolated import isolated_client, isolated_config
from ._latency import LatencyModel
from ._lifecycle import JobTimeline
from ._middleware import ConnectionDropped
from ._reject import Reject
from ._server import LoopbackServer, asgi_transport, run_forever, serve

__all__ = [
    "ApiKeys",
    "Clock",
    "ConnectionDropped",
    "Counters",
    "Credential",
    "Emulator",
    "FakeClock",
    "Fault",
    "FaultPlan",
    "JobTimeline",
    "LatencyModel",
    "LoopbackServer",
    "Reject",
    "SystemClock",
    "asgi_transport",
    "isolated_client",
    "isolated_config",
    "read_bearer",
    "read_header",
    "run_forever",
    "serve",
    "synth_image",
]

# Show the public import path in reprs, tracebacks and docs, as httpx does.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
