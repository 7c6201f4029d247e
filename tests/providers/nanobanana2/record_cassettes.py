"""Record the nanobanana2 cassettes from the emulator, through the real provider and Client.

    python -m tests.providers.nanobanana2.record_cassettes      (or run this file)

Writes ``cassettes/nanobanana2/<scenario>.yaml``. The Authorization header is filtered out,
and the emulator's random loopback port is rewritten to ``REPLAY_BASE_URL`` so replays
use a fixed base URL. Images are small (``image_scale``) to keep each file a few KB.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import vcr

from imagegen import Client, ImageGenError
from imagegen.testing import Fault, FaultPlan, LatencyModel, serve, synth_image
from imagegen_nanobanana2.emulator import create_emulator

ROOT = Path(__file__).resolve().parents[3]
CASSETTES = ROOT / "cassettes" / "nanobanana2"
REPLAY_BASE_URL = "http://127.0.0.1:8701"
API_KEY = "nb2_recording_key"
SETTINGS = {"poll_interval": 0.01}


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


def record(name: str, target: Path = CASSETTES) -> Path:
    options, call = SCENARIOS[name]
    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.04, **options)
    path = target / f"{name}.yaml"
    path.unlink(missing_ok=True)
    recorder = vcr.VCR(filter_headers=["authorization"], filter_query_parameters=["key", "api_key"],
                       record_mode="all", decode_compressed_response=True)
    with serve(emulator) as server:
        config = {"retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05},
                  "providers": {"nanobanana2": {"base_url": server.base_url, "api_key": API_KEY, **SETTINGS}},
                  "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
        with recorder.use_cassette(str(path)), Client(config) as client:
            try:
                call(client)
            except ImageGenError:
                pass  # error scenarios record the failing exchange
        recorded_host = server.base_url.removeprefix("http://")
        text = path.read_text(encoding="utf-8").replace(recorded_host, REPLAY_BASE_URL.removeprefix("http://"))
    path.write_text(text, encoding="utf-8")
    return path


def main() -> None:
    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name in SCENARIOS:
        path = record(name)
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
