"""The emulator kit: local, faithful imitations of image-generation APIs for tests.

Provider emulators subclass `Emulator`; tests serve them over real loopback HTTP with
`serve` (or in-process with `asgi_transport`) and steer them with a `FaultPlan` and a
`LatencyModel`, then assert on `Counters`. Think moto or stripe-mock::

    from imagegen.testing import FaultPlan, serve

    emulator = MyEmulator(faults=FaultPlan.script("rate_limit", "ok"))
    with serve(emulator) as server:
        ...  # point a client at server.base_url
    assert emulator.counters.faults == {"rate_limit": 1}

Pytest users can enable the ``emulator_server`` fixture with
``pytest_plugins = ["imagegen.testing.pytest_plugin"]``.

This package imports starlette and uvicorn, so ``import imagegen`` does not import it.
"""

from ._counters import Counters
from ._emulator import Emulator
from ._faults import Fault, FaultPlan
from ._images import synth_image
from ._latency import LatencyModel
from ._server import LoopbackServer, asgi_transport, run_forever, serve

__all__ = [
    "Counters",
    "Emulator",
    "Fault",
    "FaultPlan",
    "LatencyModel",
    "LoopbackServer",
    "asgi_transport",
    "run_forever",
    "serve",
    "synth_image",
]

# Show the public import path in reprs, tracebacks and docs, as httpx does.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
