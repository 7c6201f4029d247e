"""Record the wireflow cassettes from the emulator, through the real provider and Client.

    python -m tests.providers.wireflow.record_cassettes      (or run this file)

Writes ``cassettes/wireflow/<scenario>.yaml``: text-to-image, an edit with a reference
image (upload included), insufficient credits (402), a 429 on execute then success, and a
failed execution. Each successful or failed run keeps its whole poll sequence (RUNNING ...
then COMPLETED/FAILED), recorded with tiny poll delays. The Authorization header is filtered
out and the emulator's random loopback port is rewritten to ``REPLAY_BASE_URL``; output
images are shrunk to 48 px so each file stays small. Each answer keeps the time it took
(``imagegen.recording``): the emulator runs its default latency model sped up by
``TIME_SCALE``, and the client polls on the documented schedule sped up alike (``POLLS``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import vcr

from imagegen.provider import PollSchedule
from imagegen.testing import Fault, FaultPlan, LatencyModel, synth_image
from imagegen_wireflow.emulator import create_emulator, default_latency
from tests.providers._cassettes import cassette_dir, record_all, record_from

CASSETTES = cassette_dir("wireflow")
REPLAY_BASE_URL = "http://127.0.0.1:8702"
API_KEY = "sk-wireflow-recording-key"
TIME_SCALE = 0.02
_DOCUMENTED = PollSchedule(1.0, 1.5, 10.0)  # the documented backoff (P13)
POLLS = [_DOCUMENTED.initial * TIME_SCALE, _DOCUMENTED.factor, _DOCUMENTED.cap * TIME_SCALE]


def latency(seed: int) -> LatencyModel:
    model = default_latency()
    return LatencyModel(base=model.base, per_megapixel=model.per_megapixel, jitter=model.jitter,
                        scale=TIME_SCALE, seed=seed)


def config(base_url: str, api_key: str) -> dict[str, Any]:
    settings = {"base_url": base_url, "api_key": api_key, "poll_schedule": POLLS, "persist_workflows": False,
                "executions_per_minute": 100}
    return {"providers": {"wireflow": settings}, "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}


def _text_to_image(c: Any) -> Any:
    return c.generate("a red fox in the snow", provider="wireflow", aspect_ratio="16:9", size="1K")


def _edit(c: Any) -> Any:
    return c.edit("make the sky purple", images=[synth_image(40, 30, "png", seed=7)], provider="wireflow",
                  model="nano_banana_pro", aspect_ratio="4:3")


#: scenario -> (emulator options, the call, expected outcome class, expected polls)
SCENARIOS: dict[str, tuple[dict[str, Any], Callable[[Any], Any], str, bool]] = {
    "text_to_image": ({}, _text_to_image, "ImageResult", True),
    "edit_reference_image": ({"dialect": "scripts"}, _edit, "ImageResult", True),
    "insufficient_credits": ({"credits": 5}, _text_to_image, "InsufficientCreditsError", False),
    "rate_limit_then_success": ({"faults": FaultPlan.script(Fault("rate_limit", retry_after=0),
                                                            path="/execute$")},
                                _text_to_image, "ImageResult", True),
    "failed_execution": ({"outcome": "failed"}, _text_to_image, "JobFailedError", True),
}


def recorder(record_mode: str) -> vcr.VCR:
    return vcr.VCR(filter_headers=["authorization"], filter_query_parameters=["key", "api_key"],
                   record_mode=record_mode, decode_compressed_response=True)


def record(name: str, target: Path = CASSETTES) -> Path:
    options, call, _, _ = SCENARIOS[name]
    emulator = create_emulator(latency=latency(sorted(SCENARIOS).index(name)), output_max_side=48, **options)
    return record_from(emulator, target / f"{name}.yaml", lambda base_url: config(base_url, API_KEY), call,
                       time_scale=TIME_SCALE, replay_urls={"wireflow": REPLAY_BASE_URL})


def main(target: Path = CASSETTES) -> None:
    record_all(record, SCENARIOS, target)


if __name__ == "__main__":
    main()
