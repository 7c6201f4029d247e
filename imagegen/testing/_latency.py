"""Latency model: how long an emulator takes to "generate" an image."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass, field

import anyio

__all__ = ["TIME_SCALE_ENV", "LatencyModel"]

TIME_SCALE_ENV = "IMAGEGEN_EMULATOR_TIME_SCALE"


@dataclass
class LatencyModel:
    """Seconds an emulated request takes: ``(base + per_megapixel * MP) * jitter * scale``.

    `jitter` is relative (0.2 means a uniform factor in 0.8..1.2) and drawn from a generator
    seeded with `seed`. `scale` multiplies everything; when it is ``None`` the environment
    variable ``IMAGEGEN_EMULATOR_TIME_SCALE`` is read at each sample (default 1.0), so a
    whole test run or demo can be sped up, or slowed down, without touching code.
    Emulators call ``await self.latency.sleep(megapixels)`` where generation happens.
    """

    base: float = 0.0
    per_megapixel: float = 0.0
    jitter: float = 0.0
    scale: float | None = None
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("base", "per_megapixel"):
            if getattr(self, name) < 0:
                raise ValueError(f"LatencyModel.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"LatencyModel.jitter must be between 0 and 1, got {self.jitter!r}")
        if self.scale is not None and self.scale < 0:
            raise ValueError(f"LatencyModel.scale must be >= 0, got {self.scale!r}")
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def none(cls) -> LatencyModel:
        """A model that never waits."""
        return cls()

    def sample(self, megapixels: float = 0.0) -> float:
        """Draw the delay, in seconds and already scaled, for an output of `megapixels`."""
        seconds = self.base + self.per_megapixel * max(0.0, megapixels)
        if seconds <= 0.0:
            return 0.0
        if self.jitter:
            with self._lock:
                seconds *= 1.0 + self.jitter * self._rng.uniform(-1.0, 1.0)
        return max(0.0, seconds * self._scale())

    async def sleep(self, megapixels: float = 0.0) -> float:
        """Sleep for a sampled delay and return it."""
        seconds = self.sample(megapixels)
        if seconds > 0.0:
            await anyio.sleep(seconds)
        return seconds

    def _scale(self) -> float:
        if self.scale is not None:
            return self.scale
        raw = os.environ.get(TIME_SCALE_ENV, "").strip()
        if not raw:
            return 1.0
        try:
            scale = float(raw)
        except ValueError:
            message = f"{TIME_SCALE_ENV} must be a number such as 0.1, got {raw!r}"
            raise ValueError(message) from None
        if scale < 0:
            raise ValueError(f"{TIME_SCALE_ENV} must be >= 0, got {raw!r}")
        return scale
