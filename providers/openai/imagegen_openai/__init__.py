"""imagegen's ``openai`` provider: OpenAI's Images API (GPT Image 2, 2.5 and 2.6) with masks,
free sizes and streamed previews, and a local emulator of the same API.

    from imagegen import Client
    Client().edit("put a hat on it", images=["cat.png"], mask="mask.png", provider="openai")

``imagegen_openai.emulator.create_emulator()`` builds the emulator (``imagegen emulate openai``).
"""

from ._provider import OpenAIProvider, OpenAISettings

__all__ = ["OpenAIProvider", "OpenAISettings"]
