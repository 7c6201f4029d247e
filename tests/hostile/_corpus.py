"""Hostile inputs: bytes and bodies the corpus is built from."""

from __future__ import annotations

import base64
import functools
import json
import struct
import zlib

from imagegen.testing import synth_image

PNG = synth_image(16, 16, "png", seed=7)


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (a decompression bomb's head)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


@functools.cache
def bomb_png() -> bytes:
    """A real, small file that decodes to 14000 x 14000 pixels (196 MP of one colour)."""
    row = b"\0" + b"\0" * 14000  # filter byte + one grey byte per pixel
    raw = zlib.compress(row * 14000, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 14000, 14000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def gemini_body(parts: list | None = None, **top) -> bytes:
    body = {"candidates": [{"content": {"role": "model", "parts": parts or []}, "finishReason": "STOP"}],
            "responseId": "hostile", **top}
    return json.dumps(body).encode()


def inline(data: bytes, mime: str = "image/png") -> dict:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


def nb2_body(**fields) -> bytes:
    return json.dumps({"id": "gen_hostile", "status": "completed", **fields}).encode()


def wireflow_poll(url: str) -> bytes:
    return json.dumps({"status": "COMPLETED", "finalOutput": {"images": [{"url": url}]}}).encode()
