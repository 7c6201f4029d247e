"""Peak Python memory of one Gemini generation, as a multiple of the returned image's size.

The emulator runs in a child process (so its own allocations are not counted) and answers
with photo-like JPEGs (smooth colour plus grain, about 0.5 bytes per pixel, close to the real
3 Pro outputs in the public recordings) instead of the kit's flat synthetic images, so the
base64 JSON body is as large as a real one. This process traces allocations with
``tracemalloc`` around ``AsyncClient.generate``: the HTTP body, the SDK's copy of it, the
parsed JSON, the decoded bytes and the result all count.

    python -m benchmarks.gemini_memory [--rounds 3] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results" / "gemini_memory.md"
CASES = [("gemini-3-pro-image", "16:9", "1K"), ("gemini-3-pro-image", "16:9", "2K"),
         ("gemini-3-pro-image", "16:9", "4K"), ("gemini-3.1-flash-image", "8:1", "4K")]


def photo_like_jpeg(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    small = (max(2, width // 16), max(2, height // 16))
    base = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
    base = base.resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), 40).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(base, grain, 0.2).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def serve(port: int) -> None:
    """Child process: the Gemini emulator with photo-like images."""
    from imagegen.testing import LatencyModel, run_forever
    from imagegen_gemini.emulator import GeminiEmulator

    class PhotoEmulator(GeminiEmulator):
        def image(self, width: int, height: int, fmt: str = "png", *, label: str | None = None) -> bytes:
            return photo_like_jpeg(width, height, seed=width * height)

    run_forever(PhotoEmulator(latency=LatencyModel.none()), host="127.0.0.1", port=port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(base_url: str, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit("the emulator process exited early")
        try:
            httpx.get(f"{base_url}/_emulator/counters", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the emulator did not start")


@contextlib.contextmanager
def serving_child(module: str) -> Iterator[str]:
    """Run ``python -m <module> --serve PORT`` (the module's emulator) in a child process; yield its URL."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-m", module, "--serve", str(port)], env=env, stdout=subprocess.DEVNULL)
    try:
        _wait_ready(base_url, child)
        yield base_url
    finally:
        child.terminate()
        child.wait(timeout=10)


async def measure(base_url: str, rounds: int) -> list[dict[str, Any]]:
    from imagegen import AsyncClient

    config = {"providers": {"gemini": {"base_url": base_url, "api_key": "bench-key"}},
              "jobs": {"backend": "memory"}, "cache": {"backend": "off"}}
    rows = []
    async with AsyncClient(config) as client:
        await client.generate("warm-up", provider="gemini", model="gemini-3-pro-image")  # imports, pools
        tracemalloc.start()
        for model, ratio, size in CASES:
            peaks, image_bytes, width, height = [], 0, 0, 0
            for _ in range(rounds):
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
                result = await client.generate("a harbour at dawn", provider="gemini", model=model,
                                               aspect_ratio=ratio, size=size)
                peaks.append(tracemalloc.get_traced_memory()[1] - before)
                image = result.images[0]
                image_bytes, width, height = len(image.data), image.width, image.height
                del result, image
            peak = statistics.median(peaks)
            rows.append({"model": model, "ratio": ratio, "size": size, "pixels": f"{width}x{height}",
                         "image_mb": image_bytes / 1e6, "peak_mb": peak / 1e6, "multiple": peak / image_bytes})
        tracemalloc.stop()
    return rows


def table(rows: list[dict[str, Any]], rounds: int) -> str:
    lines = [
        "# Gemini: peak memory of one generation",
        "",
        f"`python -m benchmarks.gemini_memory --rounds {rounds} --write` "
        f"(Python {platform.python_version()}, google-genai, httpx; median of {rounds} rounds).",
        "",
        "Peak bytes traced by `tracemalloc` in the calling process during `AsyncClient.generate`,",
        "over the size of the returned (JPEG) image. The emulator runs in a child process and sends",
        "photo-like JPEGs, so the base64 JSON body is as large as a real answer's.",
        "",
        "| model | ratio | size | pixels | image MB | peak MB | peak / image |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['model']} | {row['ratio']} | {row['size']} | {row['pixels']} | "
                     f"{row['image_mb']:.2f} | {row['peak_mb']:.1f} | {row['multiple']:.1f}x |")
    lines += ["", "Where the bytes go: the answer is base64 JSON, 1.33x the image. Measured on its own",
              "(same emulator, plain httpx), reading the body peaks at 2x the body (httpx's chunks plus",
              "the joined bytes) and `json.loads` of its text at 3x the body, i.e. 4x the image. imagegen",
              "peaks at that same 4x: google-genai's API client hands over the body as text and",
              "builds no response objects (imagegen reads the raw answer), and the provider drops its",
              "copies of the body before decoding the image, so decoding adds no new peak. The figure",
              "grows linearly: a multiple, not a constant."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return
    with serving_child("benchmarks.gemini_memory") as base_url:
        rows = asyncio.run(measure(base_url, args.rounds))
    text = table(rows, args.rounds)
    print(text)
    if args.write:
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
