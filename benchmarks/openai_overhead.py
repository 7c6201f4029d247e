"""Per-call time and memory of imagegen's OpenAI provider (httpx directly) against the official
``openai`` SDK and raw httpx, all against one OpenAI emulator in a child process.

Subjects, all warm (pools open, modules imported), a new prompt each call:

- ``raw httpx``: the JSON POST, ``json.loads`` and base64 decoding, nothing else;
- ``imagegen``: ``AsyncClient.generate`` (memory job store, cache off, no ledger writes beyond the
  default), i.e. the provider as shipped: httpx, its own request JSON and parser;
- ``openai SDK (httpx2)``: ``AsyncOpenAI(http_client=httpx2.AsyncClient(), max_retries=0)``
  ``.images.generate`` plus base64 decoding (the 2026 SDK runs on httpx2);
- ``openai SDK (httpx client injected)``: the same with an ``httpx.AsyncClient`` (the provider's
  kind of client; the SDK's type says httpx2, but it builds its requests with the client given).

Time: rounds call every subject once in a fresh shuffled order; medians as ratios to raw httpx.
Memory: ``tracemalloc`` peak of one call, as a multiple of the decoded image's size.

    python -m benchmarks.openai_overhead [--rounds 30] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.gemini_memory import serving_child

RESULTS = Path(__file__).parent / "results" / "openai_overhead.md"
SIZES = ("1024x1024", "3840x2160")
KEY = "sk-bench"


def serve(port: int) -> None:
    from imagegen.testing import run_forever
    from imagegen_openai.emulator import create_emulator

    run_forever(create_emulator(), host="127.0.0.1", port=port, log_level="warning")


Call = Callable[[str], Awaitable[int]]


async def subjects(base_url: str, stack: list[Any]) -> dict[str, Call]:
    import httpx2
    import openai

    from imagegen import AsyncClient

    raw = httpx.AsyncClient(timeout=60)
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=base_url + "/v1", max_retries=0,
                             http_client=httpx2.AsyncClient(timeout=60))
    # Typed as httpx2.AsyncClient, but an httpx.AsyncClient works: the SDK builds requests with it.
    injected = openai.AsyncOpenAI(api_key=KEY, base_url=base_url + "/v1", max_retries=0,
                                  http_client=httpx.AsyncClient(timeout=60))  # type: ignore[arg-type]
    client = AsyncClient({"providers": {"openai": {"base_url": base_url, "api_key": KEY}},
                          "jobs": {"backend": "memory"}, "cache": {"backend": "off"}})
    stack += [raw, sdk, injected, client]

    async def raw_httpx(size: str) -> int:
        response = await raw.post(base_url + "/v1/images/generations", headers={"Authorization": f"Bearer {KEY}"},
                                  json={"model": "gpt-image-2", "prompt": f"a fox {uuid.uuid4().hex}", "size": size})
        return len(base64.b64decode(json.loads(response.content)["data"][0]["b64_json"]))

    async def via_imagegen(size: str) -> int:
        result = await client.generate(f"a fox {uuid.uuid4().hex}", provider="openai", size=size)
        return len(result.images[0].data)

    async def via_sdk(size: str) -> int:
        answer = await sdk.images.generate(model="gpt-image-2", prompt=f"a fox {uuid.uuid4().hex}", size=size)
        return len(base64.b64decode(answer.data[0].b64_json or ""))

    async def via_injected(size: str) -> int:
        answer = await injected.images.generate(model="gpt-image-2", prompt=f"a fox {uuid.uuid4().hex}", size=size)
        return len(base64.b64decode(answer.data[0].b64_json or ""))

    return {"raw httpx": raw_httpx, "imagegen": via_imagegen, "openai SDK (httpx2)": via_sdk,
            "openai SDK (httpx client injected)": via_injected}


async def measure(base_url: str, rounds: int) -> dict[str, Any]:
    stack: list[Any] = []
    calls = await subjects(base_url, stack)
    times: dict[tuple[str, str], list[float]] = {}
    memory: dict[tuple[str, str], float] = {}
    try:
        for size in SIZES:
            for call in calls.values():
                await call(size)  # warm
            for _ in range(rounds):
                order = list(calls.items())
                random.shuffle(order)
                for name, call in order:
                    started = time.perf_counter()
                    await call(size)
                    times.setdefault((name, size), []).append(time.perf_counter() - started)
            tracemalloc.start()
            for name, call in calls.items():
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                image_bytes = await call(size)
                memory[(name, size)] = (tracemalloc.get_traced_memory()[1] - before) / image_bytes
            tracemalloc.stop()
    finally:
        for item in stack:
            await item.close() if hasattr(item, "close") and not hasattr(item, "aclose") else await item.aclose()
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"medians": medians, "memory": memory, "names": list(calls)}


def table(data: dict[str, Any], rounds: int) -> str:
    lines = ["| subject | " + " | ".join(f"{s} median ms | {s} / raw httpx | {s} peak / image" for s in SIZES) + " |",
             "|---|" + "---|---|---|" * len(SIZES)]
    for name in data["names"]:
        cells = []
        for size in SIZES:
            median = data["medians"][(name, size)]
            cells += [f"{median * 1000:.1f}", f"{median / data['medians'][('raw httpx', size)]:.2f}",
                      f"{data['memory'][(name, size)]:.1f}x"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    os.environ.setdefault("IMAGEGEN_DATA_DIR", tempfile.mkdtemp())
    with serving_child("benchmarks.openai_overhead") as base_url:
        data = asyncio.run(measure(base_url, args.rounds))
    text = table(data, args.rounds)
    print(text)
    if args.write:
        command = "python -m benchmarks.openai_overhead " + " ".join(sys.argv[1:] if argv is None else argv)
        RESULTS.write_text(
            "# OpenAI provider: httpx directly vs the official SDK\n\n"
            f"Command: `{command.strip()}` ({args.rounds} interleaved rounds per size, shuffled; "
            f"{platform.python_version()}, {os.cpu_count()} cores shared with other work). One OpenAI emulator in a "
            "child process (no latency model); every subject decodes the image.\n\n"
            f"{text}\n")


if __name__ == "__main__":
    main()
