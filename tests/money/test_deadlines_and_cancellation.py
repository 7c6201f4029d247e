"""The call's deadline bounds everything; cancelling one caller never breaks shared state."""

from __future__ import annotations

import asyncio
import time

import pytest

from imagegen import AsyncClient, Client, OutputUnavailableError, ProviderUnavailableError, RateLimitError
from imagegen.testing import Fault, FaultPlan, serve, synth_image

from ._output_faults import OutputFaults
from .conftest import config_for, make_emulator


def test_a_stalled_output_body_ends_at_the_calls_deadline(tmp_path):
    emulator = make_emulator("nb2")
    with serve(OutputFaults(emulator.app, "stalled_body")) as server, \
            Client(config_for({"nb2": server}, tmp_path)) as client:
        started = time.monotonic()
        with pytest.raises(OutputUnavailableError) as info:
            client.generate("a fox", provider="nb2", timeout=2)
        took = time.monotonic() - started
        assert took < 2 + 1.0, took  # not the download limit of 60 s
        assert info.value.job_id and client.ledger.total_usd() == emulator.counters.total_usd == 0.039


def test_wireflows_execution_limiter_does_not_wait_past_the_deadline(tmp_path):
    emulator = make_emulator("wireflow")
    with serve(emulator) as server:
        config = config_for({"wireflow": server}, tmp_path, retry={"max_attempts": 1})
        config["providers"]["wireflow"]["executions_per_minute"] = 1
        with Client(config) as client:
            client.generate("a fox", provider="wireflow", timeout=5)
            started = time.monotonic()
            with pytest.raises(RateLimitError, match="nothing was sent"):
                client.generate("a hare", provider="wireflow", timeout=2)
            assert time.monotonic() - started < 2 + 1.0
    assert emulator.counters.get("executions") == 1


async def test_cancelling_the_first_of_identical_calls_leaves_the_others_their_result(tmp_path):
    emulator = make_emulator("nb2", latency=0.4)
    with serve(emulator) as server:
        config = config_for({"nb2": server}, tmp_path, cache={"backend": "memory"})
        async with AsyncClient(config) as client:
            leader = asyncio.ensure_future(client.generate("a fox", provider="nb2"))
            await asyncio.sleep(0.05)
            followers = [asyncio.ensure_future(client.generate("a fox", provider="nb2")) for _ in range(2)]
            await asyncio.sleep(0.05)
            leader.cancel()
            results = await asyncio.gather(*followers)
            await client.flush()
            assert client.ledger.total_usd() == emulator.counters.total_usd
    assert leader.cancelled()
    assert all(r.images for r in results) and len(emulator.counters.charges) == 1


async def test_a_cancelled_probe_gives_the_half_open_slot_back(tmp_path):
    emulator = make_emulator("nb2", latency=0.3, faults=FaultPlan.script(Fault("server_error"), path="/generate"))
    with serve(emulator) as server:
        config = config_for({"nb2": server}, tmp_path, retry={"max_attempts": 1},
                            circuit={"failure_threshold": 1, "cooldown_s": 0})
        async with AsyncClient(config) as client:
            with pytest.raises(ProviderUnavailableError):  # opens the circuit
                await client.generate("one", provider="nb2")
            probe = asyncio.ensure_future(client.generate("two", provider="nb2"))
            await asyncio.sleep(0.1)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            assert client.circuit_state("nb2")["state"] == "half_open"
            result = await client.generate("three", provider="nb2")  # the slot is free again
    assert result.images


def test_an_input_given_by_url_is_not_cached(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    served = [synth_image(32, 32, "png", seed=1)]
    images = Starlette(routes=[Route("/in.png", lambda request: Response(served[0], media_type="image/png"))])
    emulator = make_emulator("gemini")
    with serve(emulator) as server, serve(images) as image_server:
        # The input is served from the emulator's own host (127.0.0.1), which the provider may fetch from.
        with Client(config_for({"gemini": server}, tmp_path, cache={"backend": "memory"})) as client:
            url = image_server.base_url + "/in.png"
            first = client.edit("make it blue", images=[url], provider="gemini")
            served[0] = synth_image(32, 32, "png", seed=2)  # the image behind the URL changes
            second = client.edit("make it blue", images=[url], provider="gemini")
    assert not first.cached and not second.cached
    assert len(emulator.counters.charges) == 2
