"""Webhook delivery from the emulator to a small loopback receiver, and reading deliveries back."""

from __future__ import annotations

import threading

import anyio.to_thread
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from imagegen import AsyncClient, Client, InvalidRequestError, NoImageReturnedError
from imagegen.testing import LatencyModel, serve
from imagegen_nanobanana2 import job_from_webhook

from .conftest import config


class Receiver:
    """A webhook endpoint: records every POST; answers 500 to the first ``fail_first`` ones."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.bodies: list[bytes] = []
        self.received = threading.Event()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.body())
        if len(self.bodies) <= self.fail_first:
            return JSONResponse({"error": "not now"}, status_code=500)
        self.received.set()
        return JSONResponse({"ok": True})


@pytest.fixture
def receiver():
    rec = Receiver()
    with serve(rec.app) as server:
        rec.url = server.base_url + "/hook"
        yield rec


async def test_async_job_is_delivered_and_matches_status(start, receiver):
    emulator, server = start(mode="async", latency=LatencyModel(base=0.02))
    async with AsyncClient(config(server)) as client:
        job = await client.submit("a fox at dusk", provider="nanobanana2", webhook_url=receiver.url)
        assert job.status == "queued"
        assert emulator.requests[-1]["fields"]["webhookUrl"] == receiver.url
        assert await anyio.to_thread.run_sync(receiver.received.wait, 5)
        delivered = job_from_webhook(receiver.bodies[0])
        assert delivered.id == job.id and delivered.status == "succeeded" and delivered.result is None
        assert delivered.metadata["outputs"][0]["url"].startswith(server.base_url + "/files/")
        polled = await client.status(job.id)
        assert polled.status == "succeeded"
        downloaded = await client.provider("nanobanana2").webhook_job(receiver.bodies[0])
    assert downloaded.id == polled.id and downloaded.status == polled.status
    assert [i.sha256 for i in downloaded.result.images] == [i.sha256 for i in polled.result.images]
    assert emulator.counters.get("webhook_attempts") == 1
    assert emulator.counters.get("webhook_deliveries") == 1


def test_sync_answer_is_also_delivered(start, receiver):
    emulator, server = start(mode="sync")
    with Client(config(server)) as client:
        res = client.generate("a fox", provider="nanobanana2", webhook_url=receiver.url)
    assert receiver.received.wait(5)
    assert job_from_webhook(receiver.bodies[0]).id == res.job_id


async def test_failing_receiver_is_retried(start):
    receiver = Receiver(fail_first=1)
    with serve(receiver.app) as hook_server:
        emulator, server = start(mode="sync")
        async with AsyncClient(config(server)) as client:
            await client.generate("a fox", provider="nanobanana2", webhook_url=hook_server.base_url + "/hook")
        assert emulator.wait_webhooks(1, timeout=5)
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    assert emulator.counters.get("webhook_attempts") == 2
    assert emulator.counters.get("webhook_failures") == 1
    assert emulator.counters.get("webhook_deliveries") == 1
    assert [r.get("status_code") for r in emulator.webhooks.log] == [500, 200]


def test_fail_switch_makes_every_attempt_fail(start, receiver):
    emulator, server = start(mode="sync", webhook_attempts=3, webhook_backoff=0.01)
    emulator.fail_webhooks = True
    with Client(config(server)) as client:
        client.generate("a fox", provider="nanobanana2", webhook_url=receiver.url)
    assert emulator.wait_webhooks(1, timeout=5)
    assert receiver.bodies == []
    assert emulator.counters.get("webhook_attempts") == 3
    assert emulator.counters.get("webhook_given_up") == 1
    assert emulator.counters.get("webhook_deliveries") == 0


def test_failed_job_is_delivered_as_failed(start, receiver):
    emulator, server = start(mode="async", ticks=None)
    with Client(config(server)) as client:
        job = client.submit("emulate:fail", provider="nanobanana2", webhook_url=receiver.url)
        assert receiver.received.wait(5)
        delivered = job_from_webhook(receiver.bodies[0], provider_name="nb2")
        assert delivered.status == "failed" and delivered.error == {"message": "the job failed (no reason given)"}
        assert delivered.id == "nb2:" + job.native_id
        assert client.status(job.id).error["message"].startswith("Generation failed")


def test_job_from_webhook_is_tolerant():
    job = job_from_webhook({"jobId": "gen_1", "status": "processing", "extra": {"x": 1}})
    assert (job.id, job.status, job.metadata["vendor_status"]) == ("nanobanana2:gen_1", "running", "processing")
    job = job_from_webhook(b'{"job_id": "gen_2", "status": "completed", "outputs": '
                           b'[{"url": "https://cdn.nano-banana2.com/outputs/a.png", "width": 1920}],'
                           b' "creditsUsed": 4}')
    assert job.status == "succeeded" and job.metadata["credits_used"] == 4
    assert job.metadata["outputs"] == [{"url": "https://cdn.nano-banana2.com/outputs/a.png", "width": 1920,
                                        "height": None}]
    assert job_from_webhook({"job_id": "gen_3", "status": "weird"}).status == "running"


@pytest.mark.parametrize("payload", [b"not json", {"status": "completed"}, {"job_id": "g"}, [1, 2]])
def test_job_from_webhook_rejects_non_payloads(payload):
    with pytest.raises(InvalidRequestError, match="webhook"):
        job_from_webhook(payload)


async def test_webhook_job_without_outputs_is_no_image(start):
    _, server = start()
    async with AsyncClient(config(server)) as client:
        with pytest.raises(NoImageReturnedError, match="no outputs"):
            await client.provider("nanobanana2").webhook_job({"job_id": "gen_x", "status": "completed"})
