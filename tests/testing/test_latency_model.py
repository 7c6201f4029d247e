from __future__ import annotations

import time

import pytest

from imagegen.testing import LatencyModel

SCALE = "IMAGEGEN_EMULATOR_TIME_SCALE"


@pytest.fixture(autouse=True)
def _no_scale_from_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE, raising=False)


def test_sample_is_base_plus_per_megapixel() -> None:
    model = LatencyModel(base=1.5, per_megapixel=2.0)
    assert model.sample() == 1.5
    assert model.sample(4.0) == pytest.approx(9.5)


def test_none_never_waits() -> None:
    assert LatencyModel.none().sample(100.0) == 0.0


def test_jitter_stays_in_bounds_and_is_seeded() -> None:
    samples = [LatencyModel(base=10, jitter=0.2, seed=4).sample() for _ in range(3)]
    assert len(set(samples)) == 1
    model = LatencyModel(base=10, jitter=0.2, seed=4)
    drawn = [model.sample() for _ in range(500)]
    assert drawn[0] == samples[0]
    assert all(8.0 <= value <= 12.0 for value in drawn)
    assert max(drawn) - min(drawn) > 2.0


def test_environment_scales_every_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    model = LatencyModel(base=10, per_megapixel=10)
    monkeypatch.setenv(SCALE, "0.01")
    assert model.sample(1.0) == pytest.approx(0.2)
    monkeypatch.setenv(SCALE, "0")
    assert model.sample(1.0) == 0.0


def test_explicit_scale_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCALE, "0")
    assert LatencyModel(base=2, scale=0.5).sample() == 1.0


@pytest.mark.parametrize("value", ["fast", "-1"])
def test_bad_environment_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(SCALE, value)
    with pytest.raises(ValueError, match=SCALE):
        LatencyModel(base=1).sample()


@pytest.mark.parametrize(
    "kwargs", [{"base": -1}, {"per_megapixel": -0.1}, {"jitter": 1.5}, {"scale": -2}]
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LatencyModel(**kwargs)


async def test_sleep_really_waits_the_scaled_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCALE, "0.01")
    started = time.perf_counter()
    slept = await LatencyModel(base=10).sleep()
    assert slept == pytest.approx(0.1)
    assert time.perf_counter() - started >= 0.09
