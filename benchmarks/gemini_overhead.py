"""Per-call time of imagegen's Gemini provider against raw httpx, google-genai and LiteLLM.

One loopback Gemini emulator in a child process answers every client with the same
photo-like JPEG per size (made once, so the server's time is the same for everyone). All
calls are warm (pools open, modules imported); medians are reported as ratios to
google-genai used directly, measured two ways:

- interleaved: each round calls every subject once, in a freshly shuffled order (a fixed
  rotation would always put the same subject after imagegen and charge it imagegen's
  background writes);
- back-to-back: each round gives every subject, in shuffled order, ``BURST`` calls in a row,
  so whatever a subject leaves running in the background (imagegen's cache and job-store
  writes) slows its own next call, as it would in an application making call after call.

- ``imagegen``: ``AsyncClient.generate`` with the default config (SQLite job store and
  whatever the cache and ledger default to), a new prompt each call so the cache never hits;
- ``imagegen (lean)``: the same with ``jobs.backend = "memory"`` and ``cache.backend = "off"``;
- ``raw httpx``: the same JSON POST, ``json.loads`` and ``base64`` decoding, nothing else;
- ``google-genai on httpx`` (the baseline): ``client.aio.models.generate_content`` on an
  ``httpx.AsyncClient``, the transport imagegen gives it; ``google-genai default transport``:
  the same with the SDK's own choice, which is aiohttp whenever aiohttp is installed;
- ``litellm``: ``litellm.aimage_generation`` (``pip install litellm`` for this benchmark only;
  without it the row is skipped with a message). ``LITELLM_LOCAL_MODEL_COST_MAP=True`` keeps
  it from fetching its price map from the internet at import.

    python -m benchmarks.gemini_overhead [--rounds 15] [--sizes 1K,4K] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import importlib.util
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.gemini_memory import photo_like_jpeg, serving_child

RESULTS = Path(__file__).parent / "results" / "gemini_overhead.md"
MODEL, RATIO = "gemini-3-pro-image", "16:9"
BASELINE = "google-genai on httpx (baseline)"
#: Calls in a row per subject in the back-to-back measurement.
BURST = 5
#: The issue's bar: imagegen's per-call time within 10% of the SDK used directly.
BAR = 1.10
MODES = ("interleaved", "back-to-back")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

Call = Callable[[str, str], Awaitable[bytes]]


def _default_transport() -> str:
    # google-genai's async calls go through aiohttp whenever it is installed (LiteLLM pulls it in).
    return "aiohttp" if importlib.util.find_spec("aiohttp") else "httpx"


def serve(port: int) -> None:
    """Child process: the Gemini emulator, photo-like JPEGs made once per size."""
    from imagegen.testing import LatencyModel, run_forever
    from imagegen_gemini.emulator import GeminiEmulator

    @functools.lru_cache(maxsize=8)
    def cached(width: int, height: int) -> bytes:
        return photo_like_jpeg(width, height, seed=width * height)

    class PhotoEmulator(GeminiEmulator):
        def image(self, width: int, height: int, fmt: str = "png", *, label: str | None = None) -> bytes:
            return cached(width, height)

    run_forever(PhotoEmulator(latency=LatencyModel.none()), host="127.0.0.1", port=port)


async def imagegen_subject(base_url: str, *, lean: bool) -> tuple[Call, Any]:
    from imagegen import AsyncClient

    config: dict[str, Any] = {"providers": {"gemini": {"base_url": base_url, "api_key": "bench-key"}},
                              "cache": {"path": tempfile.mkdtemp(prefix="imagegen-overhead-cache-")}}
    if lean:
        config |= {"jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
    client = AsyncClient(config)

    async def call(prompt: str, size: str) -> bytes:
        result = await client.generate(prompt, provider="gemini", model=MODEL, aspect_ratio=RATIO, size=size)
        return result.images[0].data

    return call, client.aclose


async def httpx_subject(base_url: str) -> tuple[Call, Any]:
    client = httpx.AsyncClient(timeout=60)

    async def call(prompt: str, size: str) -> bytes:
        body = {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                     "imageConfig": {"aspectRatio": RATIO, "imageSize": size}}}
        response = await client.post(f"{base_url}/v1beta/models/{MODEL}:generateContent", json=body,
                                     headers={"x-goog-api-key": "bench-key"})
        response.raise_for_status()
        parts = json.loads(response.content)["candidates"][0]["content"]["parts"]
        return base64.b64decode(next(p["inlineData"]["data"] for p in parts if "inlineData" in p))

    return call, client.aclose


async def genai_subject(base_url: str, *, on_httpx: bool) -> tuple[Call, Any]:
    from google import genai
    from google.genai import types

    options = types.HttpOptions(base_url=base_url, api_version="v1beta")
    if on_httpx:  # the transport imagegen gives it (DESIGN: httpx everywhere, one pool per provider)
        options = types.HttpOptions(base_url=base_url, api_version="v1beta",
                                    httpx_async_client=httpx.AsyncClient(timeout=60))
    client = genai.Client(api_key="bench-key", http_options=options)

    async def call(prompt: str, size: str) -> bytes:
        response = await client.aio.models.generate_content(
            model=MODEL, contents=prompt,
            config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                               image_config=types.ImageConfig(aspect_ratio=RATIO, image_size=size)))
        return next(p.inline_data.data for p in response.candidates[0].content.parts if p.inline_data)

    return call, client.aio.aclose


async def litellm_subject(base_url: str) -> tuple[Call, Any]:
    import litellm

    async def call(prompt: str, size: str) -> bytes:
        response = await litellm.aimage_generation(model=f"gemini/{MODEL}", prompt=prompt, api_key="bench-key",
                                                   api_base=f"{base_url}/v1beta",
                                                   imageConfig={"aspectRatio": RATIO, "imageSize": size})
        return base64.b64decode(response.data[0].b64_json)

    async def close() -> None:
        return None

    return call, close


Times = dict[str, dict[tuple[str, str], list[float]]]  # subject -> (size, mode) -> seconds


async def measure(base_url: str, sizes: list[str], rounds: int, seed: int = 0) -> Times:
    subjects = {
        BASELINE: await genai_subject(base_url, on_httpx=True),
        f"google-genai default transport ({_default_transport()})": await genai_subject(base_url, on_httpx=False),
        "imagegen": await imagegen_subject(base_url, lean=False),
        "imagegen (lean: memory jobs, no cache)": await imagegen_subject(base_url, lean=True),
        "raw httpx": await httpx_subject(base_url),
    }
    if importlib.util.find_spec("litellm") is not None:
        subjects["litellm"] = await litellm_subject(base_url)
    else:
        print("litellm is not installed: its row is skipped (pip install litellm, for this benchmark only)",
              file=sys.stderr)
    times: Times = {name: {(size, mode): [] for size in sizes for mode in MODES} for name in subjects}
    names = list(subjects)
    shuffle = random.Random(seed).shuffle
    serial, run = 0, uuid.uuid4().hex[:8]  # prompts never repeat, so no cache ever hits
    for size in sizes:
        for warm in range(2):
            for name in names:
                await subjects[name][0](f"warm-up {run} {warm} {size}", size)
        # A 1K call is short, so it gets more rounds to tame the noise; both modes make as many calls.
        calls = rounds * 3 if size == "1K" else rounds
        for mode, burst in (("interleaved", 1), ("back-to-back", BURST)):
            for _ in range(max(1, calls // burst)):
                order = names[:]
                shuffle(order)
                for name in order:
                    for _ in range(burst):
                        serial += 1
                        started = time.perf_counter()
                        data = await subjects[name][0](f"a harbour at dawn {run} #{serial}", size)
                        times[name][(size, mode)].append(time.perf_counter() - started)
                        assert data[:2] == b"\xff\xd8", name
    for _, close in subjects.values():
        await close()
    return times


def ratio(times: Times, name: str, size: str, mode: str) -> float:
    return statistics.median(times[name][(size, mode)]) / statistics.median(times[BASELINE][(size, mode)])


def table(times: Times, sizes: list[str], command: str, image_mb: dict[str, float]) -> str:
    columns = [(size, mode) for size in sizes for mode in MODES]
    lines = ["# Gemini per-call overhead: imagegen vs raw httpx vs google-genai vs LiteLLM", "",
             (f"Command: `{command}` (Python {platform.python_version()}, {os.cpu_count()} cores; medians of "
              f"warm calls; interleaved = one call per subject per round in shuffled order, back-to-back = "
              f"{BURST} calls in a row per subject, so background work slows its own next call; 3x as many "
              "calls at 1K; the emulator runs in a child process on loopback)."), "",
             "| subject | " + " | ".join(f"{s} {m} ms | ratio" for s, m in columns) + " |",
             "|---|" + "---:|---:|" * len(columns)]
    for name, per_column in times.items():
        cells = []
        for column in columns:
            cells += [f"{statistics.median(per_column[column]) * 1000:.1f}", f"{ratio(times, name, *column):.2f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    sdk = [name for name in times if name.startswith("google-genai")]
    # The bar is against the faster way of using the SDK in each column (its default
    # transport, aiohttp, or httpx, the transport imagegen gave it before).
    fastest = {column: min(statistics.median(times[name][column]) for name in sdk) for column in columns}
    against = {column: statistics.median(times["imagegen"][column]) / fastest[column] for column in columns}
    lines += ["| imagegen / the faster google-genai | " + " | ".join(f"- | {against[c]:.2f}" for c in columns) + " |"]
    lean = next((name for name in times if name.startswith("imagegen (lean")), None)
    if lean is not None:  # the default stores' own share, whatever the machine's load does to the call path
        stores = {c: statistics.median(times["imagegen"][c]) / statistics.median(times[lean][c]) for c in columns}
        lines += ["| imagegen / imagegen (lean): the default stores' cost | "
                  + " | ".join(f"- | {stores[c]:.2f}" for c in columns) + " |"]
    worst = max(against.values())
    verdict = "met" if worst <= BAR else "NOT met"
    lines += ["", "Image: " + ", ".join(f"{s} = {image_mb[s]:.2f} MB JPEG" for s in sizes)
              + f" ({MODEL}, {RATIO}); ratio = median / the baseline's median in the same column.", "",
              f"Bar (imagegen within {BAR - 1:.0%} of the faster of google-genai's two transports, every "
              f"column): {verdict} (worst imagegen ratio to it {worst:.2f}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", default="1K,4K")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled call orders")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return
    os.environ.setdefault("IMAGEGEN_DATA_DIR", tempfile.mkdtemp(prefix="imagegen-overhead-"))
    sizes = [s for s in args.sizes.split(",") if s]
    with serving_child("benchmarks.gemini_overhead") as base_url:
        times = asyncio.run(measure(base_url, sizes, args.rounds, args.seed))
        image_mb = {size: len(asyncio.run(_probe(base_url, size))) / 1e6 for size in sizes}
    command = "python -m benchmarks.gemini_overhead " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(times, sizes, command.strip(), image_mb)
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


async def _probe(base_url: str, size: str) -> bytes:
    call, close = await httpx_subject(base_url)
    try:
        return await call("probe", size)
    finally:
        await close()


if __name__ == "__main__":
    main()
