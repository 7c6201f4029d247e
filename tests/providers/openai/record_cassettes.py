"""Record the openai cassettes from the emulator, through the real provider and Client.

    python -m tests.providers.openai.record_cassettes      (or run this file)

Writes ``cassettes/openai/<scenario>.yaml``: the Authorization header and the key are filtered
out, the emulator's port is rewritten to ``REPLAY_BASE_URL``, images are small (``image_scale``)
and each answer keeps its time (the emulator's latency model sped up by ``TIME_SCALE``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from imagegen import Client
from imagegen.testing import Fault, FaultPlan, LatencyModel
from imagegen_openai.emulator import create_emulator
from tests.providers._cassettes import cassette_dir, record_all, record_from
from tests.providers.openai.conftest import mask, png

CASSETTES = cassette_dir("openai")
REPLAY_BASE_URL = "http://127.0.0.1:8704"
API_KEY = "sk-openai-recording-key"
TIME_SCALE = 0.02

#: scenario -> (emulator options, the call to make)
SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[Client], Any]]] = {
    "generate_gpt_image_2": ({}, lambda c: c.generate("a lighthouse in fog", provider="openai", size="1536x864",
                                                        options={"quality": "low"})),
    "generate_2_6_xhigh": ({}, lambda c: c.generate("a paper crane", provider="openai/gpt-image-2.6-sunburst",
                                                      size="2K", aspect_ratio="16:9", output_format="webp",
                                                      options={"quality": "xhigh", "complexity": "low"})),
    "edit_with_mask": ({}, lambda c: c.edit("a hat on the cat", images=[png(48, 48)], mask=mask(48, 48),
                                            provider="openai", options={"quality": "medium"})),
    "edit_json_moderation_low": ({}, lambda c: c.edit("turn it green", images=[png(32, 32)], provider="openai",
                                                      options={"moderation": "low"})),
    "rate_limit_then_success": ({"faults": FaultPlan.script(Fault("rate_limit", retry_after=0.01))},
                                lambda c: c.generate("a red fox", provider="openai")),
    "moderation_blocked": ({}, lambda c: c.generate("a red fox [[MODERATION_BLOCKED]]", provider="openai")),
}


def recording_config(base_url: str) -> dict[str, Any]:
    return {"retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05},
            "providers": {"openai": {"base_url": base_url, "api_key": API_KEY}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}


def record(name: str, target: Path = CASSETTES) -> Path:
    options, call = SCENARIOS[name]
    latency = LatencyModel(base=15.0, per_megapixel=2.0, jitter=0.2, scale=TIME_SCALE,
                           seed=sorted(SCENARIOS).index(name))
    emulator = create_emulator(latency=latency, image_scale=0.02, **options)
    return record_from(emulator, target / f"{name}.yaml", recording_config, call,
                       time_scale=TIME_SCALE, replay_urls={"openai": REPLAY_BASE_URL})


def main(target: Path = CASSETTES) -> None:
    record_all(record, SCENARIOS, target)


if __name__ == "__main__":
    main()
