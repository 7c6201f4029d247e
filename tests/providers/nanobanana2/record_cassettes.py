"""Record the nanobanana2 cassettes from the emulator, through the real provider and Client.

    python -m tests.providers.nanobanana2.record_cassettes      (or run this file)

Writes ``cassettes/nanobanana2/<scenario>.yaml``. The Authorization header is filtered out,
and the emulator's random loopback port is rewritten to ``REPLAY_BASE_URL`` so replays
use a fixed base URL. Images are small (``image_scale``) to keep each file a few KB. Each
answer keeps the time it took (``imagegen.recording``): the emulator runs its default latency
model ("2-3 seconds per image") sped up by ``TIME_SCALE``, and polls start after
``TIME_SCALE`` x the documented 1 s.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from imagegen import Client
from imagegen.testing import Fault, FaultPlan, LatencyModel, synth_image
from imagegen_nanobanana2.emulator import create_emulator
from tests.providers._cassettes import cassette_dir, record_all, record_from

CASSETTES = cassette_dir("nanobanana2")
REPLAY_BASE_URL = "http://127.0.0.1:8701"
API_KEY = "nb2_recording_key"
TIME_SCALE = 0.02
SETTINGS = {"poll_interval": 1.0 * TIME_SCALE}


def latency(seed: int) -> LatencyModel:
    return LatencyModel(base=2.0, per_megapixel=0.4, jitter=0.2, scale=TIME_SCALE, seed=seed)


def _png() -> bytes:
    return synth_image(48, 48, "png", seed=11)


def _jpeg() -> bytes:
    return synth_image(48, 36, "jpeg", seed=12)


#: scenario -> (emulator options, the call to make)
SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[Client], Any]]] = {
    "generate_sync": ({"mode": "sync"},
                      lambda c: c.generate("a red fox in snow", provider="nanobanana2", aspect_ratio="1:1")),
    "generate_async_polls": ({"mode": "async", "ticks": 2},
                             lambda c: c.generate("a lighthouse at night", provider="nanobanana2",
                                                  aspect_ratio="16:9")),
    "edit": ({"mode": "sync"},
             lambda c: c.edit("make the sky purple", images=[_png()], provider="nanobanana2",
                              aspect_ratio="auto", output_format="png")),
    "blend": ({"mode": "sync"},
              lambda c: c.edit("blend with natural light", images=[_png(), _jpeg()], provider="nanobanana2",
                               options={"blend": True, "blend_strength": 0.7})),
    "insufficient_credits_402": ({"mode": "sync", "balances": {API_KEY: 0}},
                                 lambda c: c.generate("a red fox", provider="nanobanana2")),
    "rate_limit_then_success": (
        {"mode": "sync", "faults": FaultPlan.script(Fault("rate_limit", retry_after=0), path=r"/generate$")},
        lambda c: c.generate("a red fox", provider="nanobanana2")),
}


def recording_config(base_url: str) -> dict[str, Any]:
    return {"retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05},
            "providers": {"nanobanana2": {"base_url": base_url, "api_key": API_KEY, **SETTINGS}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}


def record(name: str, target: Path = CASSETTES) -> Path:
    options, call = SCENARIOS[name]
    emulator = create_emulator(latency=latency(sorted(SCENARIOS).index(name)), image_scale=0.04, **options)
    return record_from(emulator, target / f"{name}.yaml", recording_config, call,
                       time_scale=TIME_SCALE, replay_urls={"nanobanana2": REPLAY_BASE_URL})


def main(target: Path = CASSETTES) -> None:
    record_all(record, SCENARIOS, target)


if __name__ == "__main__":
    main()
