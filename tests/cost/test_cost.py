"""Price books, estimates, the ledger and budgets, against the three emulators."""

import asyncio
import json
import subprocess
import sys

import pytest

from imagegen import AsyncClient, BudgetExceededError, Client, ConfigurationError, ImageGenError, ImageRequest

from .conftest import provider


def mixed_config(gemini, nb2, wireflow, tmp_path, **extra):
    return {"providers": {"gemini": provider(gemini, "gemini"), "nb2": provider(nb2, "nanobanana2"),
                          "wireflow": provider(wireflow, "wireflow")},
            "jobs": {"backend": "memory"}, "cache": {"backend": "memory"},
            "ledger": {"path": str(tmp_path / "ledger.db")},
            "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}, **extra}


def test_ledger_total_equals_the_emulators_charges(gemini, nb2, wireflow, tmp_path):
    with Client(mixed_config(gemini, nb2, wireflow, tmp_path)) as client:
        client.generate("a fox", provider="gemini", n=2)
        client.generate("a fox", provider="gemini", n=2)  # cache hit: free
        client.generate("a hare", provider="nb2")
        client.generate("a wolf", provider="wireflow", size="2K")
        with pytest.raises(ImageGenError):
            client.generate("a fox [[IMAGE_SAFETY]]", provider="gemini")  # refused: not charged
        ledger = client.ledger
        charged = sum(s.emulator.counters.total_usd for s in (gemini, nb2, wireflow))
        assert ledger.total_usd() == pytest.approx(charged, abs=1e-9)
        entries = ledger.entries()
        assert sum(e.cached for e in entries) == 1 and all(e.usd == 0 for e in entries if e.cached)
        # Gemini reports tokens and nano-banana2 credits; Wireflow's documented poll body (the
        # emulator's default "docs" dialect) reports no credits, so its charge is the estimate, said so.
        assert {e.provider for e in entries if e.estimated} == {"wireflow"}
        by_provider = {row["key"]: row for row in ledger.summary(by="provider")}
        assert by_provider["gemini"]["calls"] == 3 and by_provider["nb2"]["credits"] == 4


def test_budget_refuses_before_any_network_call(gemini, nb2, wireflow, tmp_path):
    config = mixed_config(gemini, nb2, wireflow, tmp_path, budget={"daily_usd": 0.05})
    with Client(config) as client:
        client.generate("one", provider="nb2")  # $0.039
        with pytest.raises(BudgetExceededError) as info:
            client.generate("two", provider="nb2")
    assert info.value.limit_usd == 0.05 and info.value.estimate_usd == pytest.approx(0.039)
    assert "daily budget" in info.value.message
    assert len(nb2.emulator.counters.charges) == 1
    assert sum(v for k, v in nb2.emulator.counters.calls.items() if "generate" in k) == 1


async def test_budget_holds_under_fifty_concurrent_calls(gemini, nb2, wireflow, tmp_path):
    config = mixed_config(gemini, nb2, wireflow, tmp_path, budget={"total_usd": 0.4},
                          cache={"backend": "off"})
    async with AsyncClient(config) as client:
        outcomes = await asyncio.gather(
            *(client.generate(f"fox {i}", provider="nb2") for i in range(50)), return_exceptions=True)
        spent = client.ledger.total_usd()
    refused = [o for o in outcomes if isinstance(o, BudgetExceededError)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(done) == 10 and len(refused) == 40  # 10 x $0.039 fits in $0.40, an 11th does not
    assert spent == pytest.approx(0.39) and nb2.emulator.counters.total_usd == pytest.approx(0.39)


def test_budget_exceeded_exits_4(gemini, tmp_path):
    cfg = tmp_path / "imagegen.toml"
    cfg.write_text(f'[providers.gemini]\nbase_url = "{gemini.base_url}"\napi_key = "env:GEMINI_API_KEY"\n'
                   f'[budget]\ntotal_usd = 0.001\n[ledger]\npath = "{tmp_path / "l.db"}"\n')
    out = subprocess.run([sys.executable, "-m", "imagegen", "generate", "x", "--provider", "gemini", "--json",
                          "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "GEMINI_API_KEY": "k"})
    assert out.returncode == 4
    assert json.loads(out.stdout)["error"]["type"] == "BudgetExceededError"


def test_price_overrides_change_estimates(gemini, nb2, wireflow, tmp_path):
    config = mixed_config(gemini, nb2, wireflow, tmp_path, prices={
        "nb2": {"per_image_usd": {"*": 0.02}},
        "wireflow/nano_banana_2": {"usd_per_credit": 0.005, "source": "negotiated 2026-11"}})
    with Client(config) as client:
        assert client.estimate("x", provider="nb2", n=3).usd == pytest.approx(0.06)
        base = Client(mixed_config(gemini, nb2, wireflow, tmp_path)).estimate("x", provider="wireflow").usd
        assert client.estimate("x", provider="wireflow").usd == pytest.approx(base / 2)


def test_other_currencies_are_refused():
    with pytest.raises(ConfigurationError, match="prices.nb2.currency"):
        Client({"prices": {"nb2": {"currency": "EUR", "per_image_usd": {"*": 0.02}}}})


def test_estimate_a_whole_batch(gemini, nb2, wireflow, tmp_path):
    with Client(mixed_config(gemini, nb2, wireflow, tmp_path)) as client:
        batch = [ImageRequest.build(prompt="a", provider="nb2", n=2),
                 ImageRequest.build(prompt="b", provider="gemini")]
        total = client.estimate_many(batch)
        single = client.estimate("b", provider="gemini").usd
    assert total.usd == pytest.approx(0.078 + single)
    assert set(total.breakdown) == {"nb2/nano-banana-2", f"gemini/{client.provider('gemini').model_spec().id}"} \
        or len(total.breakdown) == 2


def test_cost_cli_table_json_and_chart(gemini, tmp_path):
    cfg = tmp_path / "imagegen.toml"
    cfg.write_text(f'[providers.gemini]\nbase_url = "{gemini.base_url}"\napi_key = "env:GEMINI_API_KEY"\n'
                   f'[ledger]\npath = "{tmp_path / "l.db"}"\n[cache]\nbackend = "off"\n')
    env = {**__import__("os").environ, "GEMINI_API_KEY": "k"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "imagegen", *args, "--config", str(cfg)],
                              capture_output=True, text=True, timeout=60, env=env)

    for prompt in ("a", "b"):
        assert run("generate", prompt, "--provider", "gemini", "--out", str(tmp_path / "o")).returncode == 0
    report = json.loads(run("cost", "--by", "model", "--json", "--chart", str(tmp_path / "c.png")).stdout)
    assert report["rows"][0]["calls"] == 2 and report["total_usd"] == pytest.approx(
        gemini.emulator.counters.total_usd)
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = run("cost", "--by", "provider").stdout
    assert "gemini" in table and "total" in table
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\nc\n")
    batch = json.loads(run("estimate", "--prompts", str(prompts), "--provider", "gemini", "--json").stdout)
    assert batch["cost"]["usd"] > 0 and batch["cost"]["estimated"] is True


FLEET_WORKER = """
import json, sys
from imagegen import BudgetExceededError, Client
ok = refused = 0
with Client(json.loads(sys.argv[1])) as client:
    for i in range(8):
        try:
            client.generate(f"{sys.argv[2]} fox {i}", provider="nb2")
            ok += 1
        except BudgetExceededError:
            refused += 1
print(json.dumps({"ok": ok, "refused": refused}))
"""


def test_redis_ledger_holds_a_budget_across_processes(gemini, nb2, wireflow, tmp_path, redis_url):
    import time as _time

    from imagegen._ledger import RedisLedger

    prefix = f"t{_time.time_ns()}:"
    config = mixed_config(gemini, nb2, wireflow, tmp_path, budget={"daily_usd": 0.2}, cache={"backend": "off"},
                          ledger={"backend": "redis", "url": redis_url, "key_prefix": prefix})
    workers = [subprocess.Popen([sys.executable, "-c", FLEET_WORKER, json.dumps(config), str(n)],
                                stdout=subprocess.PIPE, text=True) for n in range(2)]
    outcomes = [json.loads(w.communicate(timeout=60)[0]) for w in workers]
    ledger = RedisLedger(redis_url, prefix=prefix)
    assert sum(o["ok"] for o in outcomes) == 5  # 5 x $0.039 = $0.195 <= $0.20; a sixth would cross it
    assert sum(o["refused"] for o in outcomes) == 11
    assert ledger.total_usd() == pytest.approx(nb2.emulator.counters.total_usd) == pytest.approx(0.195)
    assert {row["key"] for row in ledger.summary(by="provider")} == {"nb2"}


def test_a_billed_answer_lost_in_transit_is_in_the_ledger_once_and_not_paid_again(gemini, tmp_path):
    """Gemini bills a 200 even when its body is cut short; the ledger must see that money, and
    sending the call again would pay for it twice."""
    from imagegen import AnswerLostError
    from imagegen.testing import Fault, FaultPlan

    gemini.emulator.faults = FaultPlan.script(Fault("truncate"))
    config = {"providers": {"gemini": provider(gemini, "gemini")}, "jobs": {"backend": "memory"},
              "cache": {"backend": "off"}, "ledger": {"path": str(tmp_path / "l.db")},
              "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.02}}
    with Client(config) as client:
        with pytest.raises(AnswerLostError) as info:
            client.generate("a fox", provider="gemini")
        entries = client.ledger.entries()
    assert len(gemini.emulator.counters.charges) == 1
    assert [(e.job_id, e.estimated) for e in entries] == [(info.value.job_id, True)]


def test_the_ledger_charges_a_job_once_and_finds_it_by_index(tmp_path):
    from imagegen._ledger import _CHARGED, Ledger

    ledger = Ledger(tmp_path / "ledger.db")
    for _ in range(3):  # a resumed job finishing again
        ledger.record(provider="p", model="m", usd=0.5, credits=None, job_id="p:1", cached=False, estimated=False)
    for _ in range(2):  # cache hits of it cost nothing and are each recorded
        ledger.record(provider="p", model="m", usd=0.0, credits=None, job_id="p:1", cached=True, estimated=False)
    entries = ledger.entries()
    assert [(e.usd, e.cached) for e in entries] == [(0.5, False), (0.0, True), (0.0, True)]
    # Looked up on every charge: a scan would grow with the ledger (10 ms at 100k rows).
    plan = " ".join(str(row) for row in ledger._db().execute(f"EXPLAIN QUERY PLAN {_CHARGED}", ("p:1", None)))
    assert "USING INDEX ledger_job" in plan
