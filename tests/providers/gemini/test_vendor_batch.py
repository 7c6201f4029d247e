"""``Client.submit_batch`` on Gemini's Batch API, against the loopback emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegen import (
    BatchJob,
    BatchResult,
    BudgetExceededError,
    Client,
    ContentPolicyError,
    InvalidRequestError,
    JobFailedError,
    ProviderUnavailableError,
    RateLimitError,
    UnsupportedFeatureError,
)
from imagegen.testing import Fault, FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator

from .conftest import API_KEY

MODEL = "gemini-3.1-flash-lite-image"


@pytest.fixture
def started() -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    emulator = create_emulator(latency=LatencyModel.none(), api_keys={API_KEY}, image_scale=0.05)
    with serve(emulator) as server:
        yield emulator, server


def _config(server: LoopbackServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"providers": {"gemini": {"base_url": server.base_url, "api_key": API_KEY, "model": MODEL}},
            "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")}, "cache": {"backend": "off"},
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")},
            "retry": {"max_attempts": 1}, **extra}


@pytest.fixture
def client(started, tmp_path: Path) -> Iterator[Client]:
    with Client(_config(started[1], tmp_path)) as c:
        yield c


def test_a_batch_costs_half_of_the_same_calls_made_one_by_one(client: Client, started) -> None:
    emulator, _ = started
    prompts = [f"a lighthouse, take {i}" for i in range(4)]
    batch = client.submit_batch(prompts, provider="gemini")
    assert isinstance(batch, BatchJob) and batch.id.startswith("gemini:batches/")
    assert batch.status == "queued" and batch.delivery == "file"
    assert batch.estimate is not None and batch.estimate.batch.usd == pytest.approx(batch.estimate.standard.usd / 2)
    result = client.wait(batch.id, timeout=30)
    assert isinstance(result, BatchResult) and result.state == "succeeded"
    assert len(result.images) == 4 and [m.status for m in result.members] == ["succeeded"] * 4
    standard = client.generate(prompts[0], provider="gemini")  # the same request, sent alone
    ledger = {e.job_id: e.usd for e in client.ledger.entries()}
    batch_charges = [ledger[m.job_id] for m in result.members]
    assert batch_charges == [pytest.approx(standard.cost.usd / 2)] * 4
    assert sum(batch_charges) == pytest.approx(result.cost.usd)
    assert emulator.counters.total_usd == pytest.approx(result.cost.usd + standard.cost.usd)


def test_a_failed_member_is_reported_and_resubmitted_alone(client: Client, started) -> None:
    emulator, _ = started
    emulator.batches.member_faults = FaultPlan.script("ok", Fault("server_error", status=503), "ok")
    batch = client.submit_batch(["a fox", "a hare", "a wolf"], provider="gemini")
    result = client.wait(batch.id, timeout=30)
    failed = batch.members[1]
    assert [m.status for m in result.members] == ["succeeded", "failed", "succeeded"]
    assert isinstance(result.errors[failed.key], ProviderUnavailableError)
    assert isinstance(result.results[1], ProviderUnavailableError) and len(result.images) == 2
    assert client.status(failed.job_id).status == "failed"
    with pytest.raises(ProviderUnavailableError):
        client.wait(failed.job_id)
    charged = {e.job_id for e in client.ledger.entries()}
    assert failed.job_id not in charged and len(charged) == 2
    again = client.resubmit_batch(batch.id)
    assert [m.key for m in again.members] == [failed.key] and again.delivery == "inline"
    retried = client.wait(again.id, timeout=30)
    assert retried.state == "succeeded" and len(retried.images) == 1
    assert client.jobs.find(failed.key).id == again.members[0].job_id
    assert len({e.job_id for e in client.ledger.entries()}) == 3


def test_refusals_and_vendor_errors_are_typed_per_member(client: Client) -> None:
    batch = client.submit_batch(["a fox", "[[IMAGE_SAFETY]] a wolf", "[[ERROR:quota]] a bear"], provider="gemini")
    result = client.wait(batch.id, timeout=30)
    errors = list(result.errors.values())
    assert [type(e) for e in errors] == [ContentPolicyError, RateLimitError]
    assert errors[0].provider == "gemini" and not errors[0].retryable and errors[1].retryable
    assert len(result.images) == 1 and result.results[0].images == result.images
    assert len(client.ledger.entries()) == 1


def test_an_expired_batch_reports_every_member_and_charges_nothing(client: Client) -> None:
    batch = client.submit_batch(["a fox", "a hare"], provider="gemini", display_name="nightly [[BATCH:EXPIRED]]")
    result = client.wait(batch.id, timeout=30)
    assert result.state == "expired" and result.images == []
    assert client.status(batch.id).status == "failed"
    assert all(isinstance(e, JobFailedError) and "expired" in e.message for e in result.errors.values())
    assert client.ledger.entries() == []


def test_cancel_ends_the_members(started, tmp_path: Path) -> None:
    with Client(_config(started[1], tmp_path)) as client:
        batch = client.submit_batch(["a fox", "a hare"], provider="gemini", display_name="[[BATCH:SLOW]]")
        assert client.status(batch.id).state == "running"
        cancelled = client.cancel(batch.id)
        assert cancelled.state == "cancelled" and [m.status for m in cancelled.members] == ["cancelled"] * 2
        assert client.status(batch.members[0].job_id).status == "cancelled"


def test_a_get_failing_for_a_while_is_ridden_out(client: Client, started) -> None:
    emulator, _ = started
    client._async.batch_poll_schedule = type(client._async.batch_poll_schedule)(initial=0.01, cap=0.01)
    emulator.faults = FaultPlan.script(Fault("server_error", status=503), Fault("timeout", delay=0),
                                       path=r"/v1beta/batches/[^:/]+$")
    batch = client.submit_batch(["a fox"], provider="gemini")
    assert client.wait(batch.id, timeout=30).state == "succeeded"
    assert emulator.counters.faults == {"server_error": 1, "timeout": 1}


def test_the_get_pitfall_is_explained(client: Client, started) -> None:
    emulator, _ = started
    client._async.batch_poll_schedule = type(client._async.batch_poll_schedule)(initial=0.01, cap=0.01)
    emulator.batches.get_pitfall_bytes = 1_000
    batch = client.submit_batch(["a fox"], provider="gemini", delivery="inline")
    seen = client.status(batch.id)
    assert seen.status == "queued" and "503" in (seen.last_error or "")
    with pytest.raises(ProviderUnavailableError, match="503/504 for days"):
        client.wait(batch.id, timeout=30)


def test_budgets_are_reserved_before_anything_is_sent(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path, budget={"daily_usd": 0.05})) as client:
        with pytest.raises(BudgetExceededError):
            client.submit_batch([f"shot {i}" for i in range(5)], provider="gemini")
        assert emulator.counters.calls.get("total", 0) == 0
        # Two members fit: reserved while the batch runs, settled to the actual cost after.
        batch = client.submit_batch(["a", "b"], provider="gemini")
        client.wait(batch.id, timeout=30)
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)


def test_another_client_follows_the_batch_by_id(started, tmp_path: Path) -> None:
    with Client(_config(started[1], tmp_path)) as first:
        batch = first.submit_batch(["a fox", "a hare"], provider="gemini")
    with Client(_config(started[1], tmp_path)) as second:
        member = second.wait(batch.members[1].job_id, timeout=30)
        assert member.job_id == batch.members[1].job_id and len(member.images) == 1
        assert second.status(batch.id).status == "succeeded"
        assert len(second.wait(batch.id).images) == 2


def test_requests_are_checked_before_sending(client: Client, started) -> None:
    emulator, _ = started
    with pytest.raises(InvalidRequestError, match="one provider and model"):
        client.submit_batch([_request("a", MODEL), _request("b", "gemini-3-pro-image")])
    with pytest.raises(UnsupportedFeatureError, match="size '4K'"):
        client.submit_batch([_request("a", MODEL, size="4K")])
    first = client.submit_batch([_request("a", MODEL, idempotency_key="k-1")])
    with pytest.raises(InvalidRequestError, match="already submitted"):
        client.submit_batch([_request("a", MODEL, idempotency_key="k-1")])
    assert emulator.counters.calls.get("POST /{version}/models/{model}:batchGenerateContent") == 1
    assert client.wait(first.id).state == "succeeded"


def test_n_is_split_into_members(client: Client) -> None:
    batch = client.submit_batch([_request("a fox", MODEL, n=3, idempotency_key="fox")])
    assert [m.key for m in batch.members] == ["fox", "fox.1", "fox.2"]
    assert len(client.wait(batch.id).images) == 3


def test_estimate_shows_both_prices(client: Client) -> None:
    small = client.estimate_batch(["a", "b"], provider="gemini")
    large = client.estimate_batch([f"shot {i}" for i in range(50)], provider="gemini")
    assert small.discount == 0.5 and small.batch.usd == pytest.approx(small.standard.usd / 2)
    assert small.savings_usd == pytest.approx(small.standard.usd / 2)
    assert (small.delivery, large.delivery, large.members) == ("inline", "file", 50)


def test_standard_calls_on_request(client: Client, started) -> None:
    emulator, _ = started
    batch = client.submit_batch(["a fox", "a hare"], provider="gemini", delivery="concurrent")
    assert batch.done and batch.delivery == "concurrent"
    assert emulator.counters.calls.get("POST /{version}/models/{model}:generateContent") == 2
    result = client.wait(batch.id)
    assert len(result.images) == 2 and result.cost.usd == pytest.approx(emulator.counters.total_usd)


def _request(prompt: str, model: str, **fields: Any) -> Any:
    from imagegen import ImageRequest

    return ImageRequest(prompt=prompt, provider="gemini", model=model, **fields)


def test_providers_without_a_vendor_batch_say_which_have_one(tmp_path: Path) -> None:
    from imagegen_nanobanana2.emulator import create_emulator as nb2_emulator

    with serve(nb2_emulator(latency=LatencyModel.none(), image_scale=0.05)) as server:
        config = {"providers": {"nanobanana2": {"base_url": server.base_url, "api_key": "nb2_key"},
                                "gemini": {"api_key": API_KEY}},
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
        with Client(config) as client:
            with pytest.raises(UnsupportedFeatureError, match="gemini/gemini-3-pro-image") as caught:
                client.submit_batch(["a fox"], provider="nanobanana2")
            assert "fallback=" in caught.value.message
            with pytest.raises(UnsupportedFeatureError):
                client.estimate_batch(["a fox"], provider="nanobanana2")
            batch = client.submit_batch(["a fox", "a hare"], provider="nanobanana2", fallback="concurrent")
            assert batch.delivery == "concurrent" and batch.state == "succeeded"
            assert len(client.wait(batch.id).images) == 2


def test_a_standard_call_with_a_members_key_waits_for_that_member(started, tmp_path: Path) -> None:
    emulator, server = started
    clock = [0.0]
    emulator.batches.clock = lambda: clock[0]
    emulator.batches.turnaround_s = 10.0
    with Client(_config(server, tmp_path)) as client:
        batch = client.submit_batch([_request("a fox", MODEL, idempotency_key="fox-1")])
        clock[0] += 20.0
        # The same logical request, sent again as a standard call: the member is resumed, not paid twice.
        result = client.generate(_request("a fox", MODEL, idempotency_key="fox-1"))
        assert result.job_id == batch.members[0].job_id and len(result.images) == 1
        assert emulator.counters.calls.get("POST /{version}/models/{model}:generateContent") is None
        assert [e.job_id for e in client.ledger.entries()] == [batch.members[0].job_id]
        assert client.wait(batch.id).state == "succeeded"
        assert [e.job_id for e in client.ledger.entries()] == [batch.members[0].job_id]


def test_member_keys_are_claimed_while_the_batch_is_sent(client: Client, started) -> None:
    from imagegen import IdempotencyConflictError
    from imagegen._claims import request_fingerprint

    emulator, _ = started
    held = _request("a fox", MODEL, idempotency_key="k-held")
    client.jobs.claim("k-held", request_fingerprint(held), "another-host/1/x", 60.0)  # a live holder elsewhere
    with pytest.raises(InvalidRequestError, match="right now"):
        client.submit_batch([_request("a hare", MODEL, idempotency_key="k-free"), held])
    first = client.submit_batch([_request("a hare", MODEL, idempotency_key="k-free")])  # released: free again
    assert client.wait(first.id).state == "succeeded"
    with pytest.raises(IdempotencyConflictError):
        client.submit_batch([_request("a different prompt", MODEL, idempotency_key="k-free")])
    assert emulator.counters.calls.get("POST /{version}/models/{model}:batchGenerateContent") == 1
