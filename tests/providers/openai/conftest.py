"""Fixtures: the OpenAI emulator over real loopback HTTP, and configs pointed at it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image as PILImage

from imagegen.testing import LoopbackServer, serve
from imagegen_openai.emulator import OpenAIEmulator, create_emulator

API_KEY = "sk-test-openai-0123456789"
FAST_RETRY = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05}


def config(server: LoopbackServer, **settings: Any) -> dict[str, Any]:
    return {"providers": {"openai": {"base_url": server.base_url, "api_key": API_KEY, **settings}},
            "jobs": {"backend": "memory"}, "cache": {"backend": "off"}, "retry": FAST_RETRY}


def png(width: int = 64, height: int = 48, *, mode: str = "RGB", alpha: int = 255) -> bytes:
    colour = (200, 30, 30, alpha) if mode == "RGBA" else (200, 30, 30)
    buffer = io.BytesIO()
    PILImage.new(mode, (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def mask(width: int = 64, height: int = 48) -> bytes:
    """A mask whose left half is fully transparent (the area to edit)."""
    image = PILImage.new("RGBA", (width, height), (0, 0, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[OpenAIEmulator, LoopbackServer]]]:
    """``start(**emulator_options)`` -> (emulator, server); every server is stopped afterwards."""
    servers: list[LoopbackServer] = []

    def _start(**options: Any) -> tuple[OpenAIEmulator, LoopbackServer]:
        options.setdefault("image_scale", 0.05)
        options.setdefault("api_keys", {API_KEY})
        emulator = create_emulator(**options)
        servers.append(server := serve(emulator).start())
        return emulator, server

    yield _start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def emulator_and_server(start):  # type: ignore[no-untyped-def]
    return start()
