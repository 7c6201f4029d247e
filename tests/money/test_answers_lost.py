"""A billed call answered 2xx whose answer is then lost is paid once, recorded once, never resent.

The emulators bill such a call as the vendors do (the answer was made before the cut), so the
books can be compared exactly: vendor charges == ledger charges, one each, and the caller holds
an ``AnswerLostError`` with the job id the ledger keeps the charge under.
"""

from __future__ import annotations

import pytest

from imagegen import AnswerLostError, AsyncClient, BudgetExceededError, Client, ImageRequest
from imagegen.testing import Fault, FaultPlan, asgi_transport, serve

from .conftest import config_for, make_emulator

#: The provider's billed route (its POST) in each emulator.
BILLED_ROUTE = {"gemini": r":generateContent", "nb2": r"/generate$", "nb2async": r"/generate$",
                "openai": r"/images/generations$"}
#: How an answer is lost after its 2xx status line.
LOSSES = {
    "cut mid-body": Fault("drop"),
    "read timeout after the status line": Fault("timeout", delay=3.0, after_chunks=1),
    "unreadable body": Fault("malformed"),
}


def _ledger_rows(client: Client | AsyncClient) -> list[dict]:
    ledger = client.ledger
    assert ledger is not None
    return [e.to_dict() for e in ledger.entries() if not e.cached]


@pytest.mark.parametrize("loss", list(LOSSES))
@pytest.mark.parametrize("name", list(BILLED_ROUTE))
def test_an_answer_lost_after_its_2xx_is_paid_once_and_never_resent(tmp_path, name, loss):
    emulator = make_emulator(name, faults=FaultPlan.script(LOSSES[loss], path=BILLED_ROUTE[name]))
    with serve(emulator) as server:
        config = config_for({name: server}, tmp_path)
        config["providers"][name]["timeout"] = 1.0
        with Client(config) as client:
            with pytest.raises(AnswerLostError) as info:
                client.generate("a fox", provider=name, timeout=20)
            rows = _ledger_rows(client)
            stored = client.jobs.get(info.value.job_id)
            estimate = client.estimate(ImageRequest(prompt="a fox", provider=name))
    error = info.value
    charges = [c for c in emulator.counters.charges if c["usd"] > 0]
    assert len(charges) == 1, "sent once, billed once"
    assert not error.retryable and error.job_id and error.job_id.startswith(f"{name}:")
    assert "billed" in error.message and error.job_id in error.message
    assert [(r["job_id"], r["estimated"]) for r in rows] == [(error.job_id, True)]
    assert rows[0]["usd"] == pytest.approx(estimate.usd)  # what the vendor billed was in the lost answer
    assert stored is not None and stored.status == "failed" and stored.metadata["answer_lost"]


@pytest.mark.parametrize("entry", ["submit", "generate on a route"])
def test_no_entry_point_and_no_route_pays_again_for_a_lost_answer(tmp_path, entry):
    gemini = make_emulator("gemini", faults=FaultPlan.script("drop", path=BILLED_ROUTE["gemini"]))
    openai = make_emulator("openai")
    with serve(gemini) as first, serve(openai) as second:
        config = config_for({"gemini": first, "openai": second}, tmp_path,
                            routes={"both": {"chain": ["gemini", "openai"]}})
        with Client(config) as client:
            with pytest.raises(AnswerLostError) as info:
                if entry == "submit":
                    client.submit("a fox", provider="gemini")
                else:
                    client.generate("a fox", provider="both", timeout=20)
            rows = _ledger_rows(client)
            with pytest.raises(AnswerLostError):  # nothing to fetch, and wait() says so without paying
                client.wait(info.value.job_id, timeout=5)
            assert client.status(info.value.job_id).status == "failed"
    assert len(gemini.counters.charges) == 1 and openai.counters.charges == []
    assert [(r["job_id"], r["estimated"]) for r in rows] == [(info.value.job_id, True)]
    if entry != "submit":
        assert [a.error_type for a in info.value.attempts] == ["AnswerLostError"]


async def test_an_in_process_emulator_cuts_after_the_status_line_as_over_http(tmp_path):
    emulator = make_emulator("gemini", faults=FaultPlan.script("drop", path=BILLED_ROUTE["gemini"]))
    config = config_for({"gemini": _NoServer()}, tmp_path)
    async with AsyncClient(config, transports={"gemini": asgi_transport(emulator)}) as client:
        with pytest.raises(AnswerLostError):
            await client.generate(ImageRequest(prompt="a fox", provider="gemini", timeout=20))
        rows = _ledger_rows(client)
    assert len(emulator.counters.charges) == 1 and len(rows) == 1


def test_a_vendor_with_idempotency_keys_is_sent_again_for_free(tmp_path):
    """Wireflow answers a resent execution (same Idempotency-Key) with the one it billed."""
    emulator = make_emulator("wireflow", faults=FaultPlan.script("drop", path=r"/(execute|run)$"))
    with serve(emulator) as server, Client(config_for({"wireflow": server}, tmp_path)) as client:
        result = client.generate("a fox", provider="wireflow", timeout=20)
        rows = _ledger_rows(client)
    assert result.images and result.attempts[0].error_type == "ProviderUnavailableError"
    assert len([c for c in emulator.counters.charges if c["usd"] > 0]) == 1 and len(rows) == 1


class _NoServer:
    base_url = "http://127.0.0.1:9"  # never dialled: the in-process transport answers


def test_the_same_idempotency_key_gets_the_same_outcome_and_the_budget_counts_the_charge(tmp_path):
    emulator = make_emulator("nb2", faults=FaultPlan.script("drop", path=BILLED_ROUTE["nb2"]))
    with serve(emulator) as server, Client(config_for({"nb2": server}, tmp_path, budget={"total_usd": 0.05})) as client:
        with pytest.raises(AnswerLostError) as first:
            client.generate("a fox", provider="nb2", idempotency_key="fox-1", timeout=20)
        for _ in range(6):  # a retry with the key: told, not sent (nor held against the provider)
            with pytest.raises(AnswerLostError) as again:
                client.generate("a fox", provider="nb2", idempotency_key="fox-1", timeout=20)
        assert client.circuit_state("nb2")["state"] == "closed"
        with pytest.raises(BudgetExceededError):  # the lost answer's $0.039 counts against the budget
            client.generate("a hare", provider="nb2", timeout=20)
        spent = client.ledger.spent_usd()
    assert again.value.job_id == first.value.job_id and "told again" in again.value.message
    assert len(emulator.counters.charges) == 1 and spent == pytest.approx(0.039)
