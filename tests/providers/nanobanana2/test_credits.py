"""Credits: the balance endpoint, the opt-in check before submitting, per-key accounting."""

from __future__ import annotations

import pytest

from imagegen import AsyncClient, Client, InsufficientCreditsError

from .conftest import API_KEY, config

BALANCE = "GET /api/v1/credits/balance"
GENERATE = "POST /api/v1/generate"


async def test_balance(start):
    emulator, server = start(initial_credits=123)
    async with AsyncClient(config(server)) as client:
        provider = client.provider("nanobanana2")
        assert await provider.balance() == 123
        await client.generate("a fox", provider="nanobanana2", n=2)
        assert await provider.balance() == 115
    assert emulator.counters.total_credits == 8 and emulator.counters.total_usd == pytest.approx(0.078)


@pytest.mark.parametrize("how", ["option", "setting"])
def test_check_credits_refuses_before_the_generation_call(start, how):
    emulator, server = start(balances={API_KEY: 5})
    settings = {"check_credits": True} if how == "setting" else {}
    options = {"check_credits": True} if how == "option" else {}
    with Client(config(server, **settings)) as client:
        with pytest.raises(InsufficientCreditsError) as info:
            client.generate("a fox", provider="nanobanana2", n=2, options=options)
    assert (info.value.required, info.value.available) == (8, 5)
    assert "5 credits" in info.value.message
    assert emulator.counters.calls[BALANCE] == 1 and GENERATE not in emulator.counters.calls


def test_check_credits_passes_when_enough(start, png):
    emulator, server = start(balances={API_KEY: 8})
    with Client(config(server, check_credits=True)) as client:
        client.generate("a fox", provider="nanobanana2")
        client.edit("x", images=[png], provider="nanobanana2", options={"check_credits": False})
    assert emulator.balance(API_KEY) == 0
    assert emulator.counters.calls[BALANCE] == 1


def test_without_the_check_the_server_answers_402(start):
    emulator, server = start(balances={API_KEY: 5})
    with Client(config(server)) as client, pytest.raises(InsufficientCreditsError) as info:
        client.generate("a fox", provider="nanobanana2", n=2)
    assert info.value.status_code == 402
    assert BALANCE not in emulator.counters.calls


def test_credits_are_kept_per_key(start):
    emulator, server = start(initial_credits=10)
    with Client(config(server)) as a, Client(config(server, api_key="nb2_second")) as b:
        a.generate("x", provider="nanobanana2", n=2)
        b.generate("x", provider="nanobanana2")
        with pytest.raises(InsufficientCreditsError):
            a.generate("x", provider="nanobanana2")
    assert emulator.balance(API_KEY) == 2 and emulator.balance("nb2_second") == 6
