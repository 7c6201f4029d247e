"""pydantic-ai's Google model with image output, driven against the Gemini emulator.

The way pydantic-ai documents it: a ``GoogleModel`` on a ``GoogleProvider`` (here with the
emulator's ``base_url``), an ``Agent`` whose output is a ``BinaryImage`` or text with images,
run, streamed, and continued with its message history (thought signatures sent back).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from PIL import Image

from imagegen.testing import FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator

pydantic_ai = pytest.importorskip(
    "pydantic_ai", reason="pydantic-ai-slim is in the dev extra: pip install -e '.[dev]'")
from pydantic_ai import Agent, BinaryImage  # noqa: E402
from pydantic_ai.capabilities import ImageGeneration  # noqa: E402
from pydantic_ai.messages import FilePart  # noqa: E402
from pydantic_ai.models.google import GoogleModel  # noqa: E402
from pydantic_ai.providers.google import GoogleProvider  # noqa: E402


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.1)
    with serve(emulator) as server:
        yield emulator, server


@pytest.fixture
def emulator(_served: tuple[GeminiEmulator, LoopbackServer]) -> GeminiEmulator:
    emulator = _served[0]
    emulator.faults = FaultPlan()
    emulator.received.clear()
    return emulator


def model(served: tuple[GeminiEmulator, LoopbackServer], name: str) -> GoogleModel:
    return GoogleModel(name, provider=GoogleProvider(api_key="test-key", base_url=served[1].base_url))


def size_of(image: BinaryImage) -> tuple[str, int, int]:
    with Image.open(io.BytesIO(image.data)) as img:
        return str(img.format), img.width, img.height


def test_binary_image_output(_served, emulator: GeminiEmulator) -> None:
    agent = Agent(model(_served, "gemini-2.5-flash-image"), output_type=BinaryImage)
    result = agent.run_sync("Generate an image of an axolotl.")
    assert isinstance(result.output, BinaryImage) and result.output.media_type == "image/png"
    assert size_of(result.output) == ("PNG", 102, 102)
    assert result.usage.output_tokens and emulator.counters.total_usd > 0


def test_image_generation_settings_reach_the_request(_served, emulator: GeminiEmulator) -> None:
    agent = Agent(model(_served, "gemini-3-pro-image-preview"), output_type=BinaryImage,
                  capabilities=[ImageGeneration(aspect_ratio="16:9", size="2K")])
    result = agent.run_sync("Generate a wide image of a harbour.")
    assert size_of(result.output) == ("JPEG", 275, 154)  # 2752x1536 scaled by 0.1
    config = emulator.received[-1]["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}


def test_text_and_image_then_a_second_turn_with_signatures(_served, emulator: GeminiEmulator) -> None:
    agent = Agent(model(_served, "gemini-3-pro-image-preview"))
    first = agent.run_sync("Tell me a two-sentence story about an axolotl with an illustration.")
    files = [p for m in first.all_messages() for p in getattr(m, "parts", []) if isinstance(p, FilePart)]
    assert first.output.startswith("Here is the picture") and len(files) == 1
    assert first.usage.details["thoughts_tokens"]
    agent.run_sync("Now make the axolotl blue.", message_history=first.all_messages())
    history = emulator.received[-1]["contents"]
    assert [turn["role"] for turn in history] == ["user", "model", "user"]
    assert sum(1 for part in history[1]["parts"] if part.get("thoughtSignature")) == 2


async def test_run_stream(_served, emulator: GeminiEmulator) -> None:
    agent = Agent(model(_served, "gemini-3.1-flash-image-preview"), output_type=BinaryImage)
    async with agent.run_stream("Generate an image of an axolotl.") as result:
        output = await result.get_output()
    assert isinstance(output, BinaryImage) and size_of(output)[0] == "JPEG"
    assert emulator.counters.calls.get("POST /{version}/models/{model}:streamGenerateContent") == 1


def test_unknown_model_is_the_apis_404(_served) -> None:
    from pydantic_ai.exceptions import ModelHTTPError

    agent = Agent(model(_served, "gemini-9-imaginary"))
    with pytest.raises(ModelHTTPError) as caught:
        agent.run_sync("hello")
    assert caught.value.status_code == 404
