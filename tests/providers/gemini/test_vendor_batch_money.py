"""A vendor batch's money through the core's charge lifecycle: every member charged (its batch-price
estimate) the moment the vendor accepts the batch, settled to what the vendor reported when it
ends (voided for a member that failed), whoever looks and whatever failed in between."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegen import BudgetExceededError, Client, ProviderUnavailableError
from imagegen._journal import journal_for
from imagegen._ledger import STALE_RESERVATION_S, Ledger
from imagegen.testing import FakeClock, Fault, FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator
from tests.money._audit import write_locked

from .conftest import API_KEY

MODEL = "gemini-3.1-flash-lite-image"
TURNAROUND_S = 3 * 3600.0  # longer than a stale budget reservation lives
PROMPTS = [f"a teapot, angle {i}" for i in range(4)]


@pytest.fixture
def started() -> Iterator[tuple[GeminiEmulator, LoopbackServer, FakeClock]]:
    clock = FakeClock()
    emulator = create_emulator(latency=LatencyModel.none(), api_keys={API_KEY}, image_scale=0.05, clock=clock,
                               batch_turnaround_s=TURNAROUND_S)
    with serve(emulator) as server:
        yield emulator, server, clock


def _config(server: LoopbackServer, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"providers": {"gemini": {"base_url": server.base_url, "api_key": API_KEY, "model": MODEL}},
            "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")}, "cache": {"backend": "off"},
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")},
            "retry": {"max_attempts": 1}, **extra}


def test_every_member_is_charged_when_the_vendor_accepts_the_batch(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    with Client(_config(server, tmp_path, budget={"total_usd": 5.0})) as client:
        batch = client.submit_batch(PROMPTS, provider="gemini")
        # Nobody has waited yet: the ledger and the budget hold every member at its estimate.
        entries = {e.job_id: e for e in client.ledger.entries()}
        assert set(entries) == {m.job_id for m in batch.members}
        assert all(e.estimated and e.key == m.key for m, e in zip(batch.members, entries.values(), strict=True))
        assert sum(e.usd for e in entries.values()) == pytest.approx(batch.estimate.batch.usd)
        assert client.ledger.spent_usd() == pytest.approx(batch.estimate.batch.usd)
        seen = client.status(batch.id)
        assert [m.cost.usd for m in seen.members] == [entries[m.job_id].usd for m in batch.members]
        assert all(m.cost.estimated and m.status == "queued" for m in seen.members)
        clock.advance(TURNAROUND_S)  # the batch ends
        result = client.wait(batch.id, timeout=30)
        assert not any(e.estimated for e in client.ledger.entries())
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd) == pytest.approx(
            result.cost.usd)
        assert client.ledger.spent_usd() == pytest.approx(client.ledger.total_usd())
        assert len(client.ledger.entries()) == len(PROMPTS)


def test_a_batch_waited_on_hours_later_is_still_on_the_ledger_and_the_budget(started, tmp_path: Path,
                                                                              monkeypatch) -> None:
    emulator, server, clock = started
    with Client(_config(server, tmp_path)) as probe:
        standard = probe.estimate(PROMPTS[0], provider="gemini").usd
        estimate = probe.estimate_batch(PROMPTS, provider="gemini").batch.usd
    # Room for the batch and half a standard call more.
    with Client(_config(server, tmp_path, budget={"total_usd": estimate + standard / 2})) as client:
        batch = client.submit_batch(PROMPTS, provider="gemini")
    # Two hours on, in the ledger's clock: a budget reservation would have expired by now.
    later = time.time() + 2 * STALE_RESERVATION_S
    monkeypatch.setattr("imagegen._ledger.time", types.SimpleNamespace(time=lambda: later))
    with Client(_config(server, tmp_path, budget={"total_usd": estimate + standard / 2})) as client:
        with pytest.raises(BudgetExceededError):
            client.generate("one more teapot", provider="gemini")
        assert client.ledger.spent_usd() == pytest.approx(estimate)
        clock.advance(TURNAROUND_S)  # the batch ends
        result = client.wait(batch.id, timeout=30)
        assert len(result.images) == len(PROMPTS)
        assert [e.job_id for e in client.ledger.entries()] == [m.job_id for m in batch.members]
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)
        assert client.ledger.spent_usd() == pytest.approx(client.ledger.total_usd())


def test_a_failed_member_is_voided_and_the_rest_settled(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    emulator.batches.member_faults = FaultPlan.script("ok", Fault("rate_limit"), "ok", "ok")
    with Client(_config(server, tmp_path)) as client:
        batch = client.submit_batch(PROMPTS, provider="gemini")
        assert len(client.ledger.entries()) == len(PROMPTS)
        clock.advance(TURNAROUND_S)  # the batch ends
        result = client.wait(batch.id, timeout=30)
        failed = batch.members[1].job_id
        assert [m.status for m in result.members] == ["succeeded", "failed", "succeeded", "succeeded"]
        assert result.members[1].cost.usd == 0
        assert failed not in {e.job_id for e in client.ledger.entries()}
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)
        assert client.ledger.spent_usd() == pytest.approx(client.ledger.total_usd())


def test_a_ledger_locked_at_acceptance_journals_the_charges(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    config = _config(server, tmp_path)
    Ledger(tmp_path / "ledger.sqlite3").close()
    with Client(config) as client, write_locked(tmp_path / "ledger.sqlite3"):
        batch = client.submit_batch(PROMPTS, provider="gemini")
        journal = journal_for(client.ledger)
    assert any("charge journal" in w for w in batch.warnings) and len(batch.warnings) <= 4
    assert emulator.counters.calls["POST /{version}/models/{model}:batchGenerateContent"] == 1
    with Client(config) as later:  # the next start replays the journal: every member on the ledger
        assert not journal.pending()
        assert {e.job_id for e in later.ledger.entries()} == {m.job_id for m in batch.members}
        clock.advance(TURNAROUND_S)  # the batch ends
        later.wait(batch.id, timeout=30)
        assert len(later.ledger.entries()) == len(PROMPTS)
        assert later.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)


def test_a_job_store_locked_when_the_batch_ends_keeps_the_results(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    config = _config(server, tmp_path)
    with Client(config) as client:
        batch = client.submit_batch(PROMPTS, provider="gemini")
        clock.advance(TURNAROUND_S)  # the batch ends
        with write_locked(tmp_path / "jobs.sqlite3"):
            result = client.wait(batch.id, timeout=30)
        assert len(result.images) == len(PROMPTS)
        assert any("job store could not record" in w for w in result.warnings)
    with Client(config) as again:  # the outcome was not stored: asked again, charged once
        assert len(again.wait(batch.id, timeout=30).images) == len(PROMPTS)
        assert len(again.ledger.entries()) == len(PROMPTS)
        assert again.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)


def test_a_create_whose_answer_is_lost_is_found_not_sent_again(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    # The emulator takes the batch, then the connection is cut before its answer.
    emulator.faults = FaultPlan.script(Fault("drop", after_chunks=1), path=r":batchGenerateContent$")
    with Client(_config(server, tmp_path, budget={"total_usd": 5.0})) as client:
        batch = client.submit_batch(PROMPTS, provider="gemini")
        assert len(emulator.batches.batches) == 1 and batch.native_id in emulator.batches.batches
        assert any("create call was lost" in w for w in batch.warnings)
        assert {e.job_id for e in client.ledger.entries()} == {m.job_id for m in batch.members}
        clock.advance(TURNAROUND_S)
        assert len(client.wait(batch.id, timeout=30).images) == len(PROMPTS)
        assert emulator.counters.total_usd > 0
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)


def test_a_create_the_vendor_refused_releases_the_budget(started, tmp_path: Path) -> None:
    emulator, server, _ = started
    emulator.faults = FaultPlan.script(Fault("server_error", status=503), path=r":batchGenerateContent$")
    with Client(_config(server, tmp_path, budget={"total_usd": 5.0})) as client:
        with pytest.raises(ProviderUnavailableError):
            client.submit_batch(PROMPTS, provider="gemini")
        assert emulator.batches.batches == {} and client.ledger.entries() == []
        assert client.ledger.spent_usd() == 0


def test_results_that_cannot_be_downloaded_stay_charged_until_they_can(started, tmp_path: Path) -> None:
    emulator, server, clock = started
    with Client(_config(server, tmp_path, budget={"total_usd": 5.0})) as client:
        client._async.batch_poll_schedule = type(client._async.batch_poll_schedule)(initial=0.01, cap=0.01)
        batch = client.submit_batch(PROMPTS, provider="gemini", delivery="file")
        clock.advance(TURNAROUND_S)
        emulator.faults = FaultPlan.script(*[Fault("server_error", status=503)] * 100, path=r"files/[^/]+:download")
        with pytest.raises(ProviderUnavailableError):
            client.wait(batch.id, timeout=30)
        assert emulator.counters.total_usd > 0  # the vendor has billed; the answers are out of reach
        assert all(e.estimated for e in client.ledger.entries()) and len(client.ledger.entries()) == len(PROMPTS)
        assert client.ledger.spent_usd() == pytest.approx(batch.estimate.batch.usd)
        emulator.faults = FaultPlan()
        assert len(client.wait(batch.id, timeout=30).images) == len(PROMPTS)
        assert client.ledger.total_usd() == pytest.approx(emulator.counters.total_usd)
        assert client.ledger.spent_usd() == pytest.approx(client.ledger.total_usd())
