"""imagegen's ``gemini`` provider: Google's Gemini image models ("Nano Banana") through
``generateContent`` and the google-genai SDK, with a local emulator of the same API.

    from imagegen import Client
    Client().generate("a red fox", provider="gemini/gemini-3-pro-image", size="2K")

``imagegen_gemini.emulator.create_emulator()`` builds the emulator (``imagegen emulate gemini``).
"""

from ._provider import GeminiProvider, GeminiSettings

__all__ = ["GeminiProvider", "GeminiSettings"]
