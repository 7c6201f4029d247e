"""Record the gemini cassettes from the emulator, through the real provider and Client.

    python -m tests.providers.gemini.record_cassettes      (or run this file)

Writes ``cassettes/gemini/<scenario>.yaml``: a success per model family, an edit with two
references, each refusal shape, and a quota 429 followed by a success. The ``x-goog-api-key``
header and any ``key=`` parameter are filtered out, and the emulator's random loopback port is
rewritten to ``REPLAY_BASE_URL`` so replays use a fixed base URL. Images are shrunk
(``image_scale``) to keep each file small. Each answer keeps the time it took
(``imagegen.recording``): the emulator runs ``LATENCY`` (about 11 s at 1K, 20 s at 2K)
sped up by ``TIME_SCALE``, which the cassette stores so ``imagegen bench`` scales it back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import vcr

from imagegen import AsyncClient, Client, ImageRequest, ImageResult, RateLimitError
from imagegen.recording import RecordingClient
from imagegen.testing import Fault, FaultPlan, LatencyModel, synth_image
from imagegen_gemini.emulator import create_emulator
from tests.providers._cassettes import cassette_dir, record_all, record_from

CASSETTES = cassette_dir("gemini")
REPLAY_BASE_URL = "http://127.0.0.1:8701"
API_KEY = "gemini-recording-key"
IMAGE_SCALE = 0.05
TIME_SCALE = 0.02


def latency(seed: int) -> LatencyModel:
    """Gemini image models: about 8 s plus 3 s per megapixel, +-30 %, sped up by TIME_SCALE."""
    return LatencyModel(base=8.0, per_megapixel=3.0, jitter=0.3, scale=TIME_SCALE, seed=seed)


def config(base_url: str, api_key: str) -> dict[str, Any]:
    return {"providers": {"gemini": {"base_url": base_url, "api_key": api_key}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}


def _generate(model: str, prompt: str = "a red fox in the snow", **kwargs: Any) -> Callable[[Client], Any]:
    return lambda c: c.generate(prompt, provider="gemini", model=model, **kwargs)


def _edit(c: Client) -> Any:
    references = [synth_image(48, 48, "png", seed=21), synth_image(40, 30, "jpeg", seed=22)]
    return c.edit("put the fox from the first image into the second", images=references, provider="gemini",
                  model="gemini-3-pro-image", aspect_ratio="4:3")


def _retry_once_on_rate_limit(c: Client | AsyncClient) -> Any:
    # Works whether or not the client's router retries by itself: both exchanges are played.
    def call() -> Any:
        return c.generate("a red fox", provider="gemini", model="gemini-3-pro-image")

    if isinstance(c, AsyncClient):
        async def run() -> ImageResult:
            try:
                return await call()
            except RateLimitError:
                return await call()

        return run()
    try:
        return call()
    except RateLimitError:
        return call()


LITE = "gemini/gemini-3.1-flash-lite-image"


def _vendor_batch(prompts: list[str]) -> Callable[[Any], Any]:
    """One vendor batch of ``prompts`` (the lite model), waited for: recorded, replayed sync or async.
    Each request has a fixed key: the answers are matched to requests by key."""
    def call(c: Any) -> Any:
        requests = [ImageRequest(prompt=p, idempotency_key=f"member-{i}") for i, p in enumerate(prompts)]
        if isinstance(c, RecordingClient):
            return c.run_batch(requests, provider=LITE)
        if isinstance(c, AsyncClient):
            async def run() -> Any:
                batch = await c.submit_batch(requests, provider=LITE)
                return await c.wait(batch.id)

            return run()
        return c.wait(c.submit_batch(requests, provider=LITE).id)

    return call


def _session_three_turns(c: Any) -> Any:
    """An edit session of three turns on 3 Pro: each turn sends the earlier ones back."""
    turns = ["a cottage in a meadow", "now make the roof blue", "now add snow"]
    session = c.session("gemini/gemini-3-pro-image")
    if isinstance(c, AsyncClient):
        async def run() -> Any:
            await session.generate(turns[0])
            await session.edit(turns[1])
            return await session.edit(turns[2])

        return run()
    session.generate(turns[0])
    session.edit(turns[1])
    return session.edit(turns[2])


#: scenario -> (emulator fault plan or None, the call to make, expected outcome class name)
SCENARIOS: dict[str, tuple[FaultPlan | None, Callable[[Client], Any], str]] = {
    "generate_flash_25": (None, _generate("gemini-2.5-flash-image", aspect_ratio="1:1"), "ImageResult"),
    "generate_pro_3": (None, _generate("gemini-3-pro-image", aspect_ratio="16:9", size="2K"), "ImageResult"),
    "generate_flash_31": (None, _generate("gemini-3.1-flash-image", aspect_ratio="1:4", size="512"), "ImageResult"),
    "generate_flash_lite_31": (None, _generate("gemini-3.1-flash-lite-image"), "ImageResult"),
    "generate_nano_banana_21": (None, _generate("gemini-nano-banana-2.1", aspect_ratio="21:9"), "ImageResult"),
    "edit_two_references": (None, _edit, "ImageResult"),
    "refusal_image_safety": (None, _generate("gemini-3-pro-image", "a scene [[IMAGE_SAFETY]]"),
                             "ContentPolicyError"),
    "refusal_image_prohibited_content": (None, _generate("gemini-3-pro-image", "x [[IMAGE_PROHIBITED_CONTENT]]"),
                                         "ContentPolicyError"),
    "refusal_block_prompt": (None, _generate("gemini-3-pro-image", "x [[BLOCK_PROMPT]]"), "ContentPolicyError"),
    "refusal_no_image": (None, _generate("gemini-nano-banana-2.1", "x [[NO_IMAGE]]"), "NoImageReturnedError"),
    "refusal_text_only": (None, _generate("gemini-2.5-flash-image", "x [[TEXT_ONLY]]"), "NoImageReturnedError"),
    "rate_limit_then_success": (FaultPlan.script(Fault("rate_limit", retry_after=0)), _retry_once_on_rate_limit,
                                "ImageResult"),
    # The same prompt as generate_flash_lite_31: `imagegen bench` shows the two costs per image side by side.
    "vendor_batch_inline": (None, _vendor_batch(["a red fox in the snow"] * 2), "BatchResult"),
    "vendor_batch_file": (None, _vendor_batch(["a red fox in the snow"] * 3), "BatchResult"),
    "session_three_turns": (None, _session_three_turns, "ImageResult"),
}
#: HTTP exchanges in each cassette: one call per scenario, except the 429 one (two), the batches
#: (create and get; a file batch also uploads in two steps and downloads the answers) and the session.
EXCHANGES = dict.fromkeys(SCENARIOS, 1) | {"rate_limit_then_success": 2, "vendor_batch_inline": 2,
                                               "vendor_batch_file": 5, "session_three_turns": 3}


def recorder(record_mode: str) -> vcr.VCR:
    return vcr.VCR(filter_headers=["x-goog-api-key", "authorization"], filter_query_parameters=["key"],
                   record_mode=record_mode, decode_compressed_response=True)


def record(name: str, target: Path = CASSETTES) -> Path:
    faults, call, _ = SCENARIOS[name]
    emulator = create_emulator(latency=latency(sorted(SCENARIOS).index(name)), image_scale=IMAGE_SCALE,
                               faults=faults, api_keys={API_KEY})
    return record_from(emulator, target / f"{name}.yaml", lambda base_url: config(base_url, API_KEY), call,
                       time_scale=TIME_SCALE, replay_urls={"gemini": REPLAY_BASE_URL})


def main(target: Path = CASSETTES) -> None:
    record_all(record, SCENARIOS, target)


if __name__ == "__main__":
    main()
