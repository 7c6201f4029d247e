"""imagegen's Wireflow provider: requests become Wireflow node graphs, run as workflows.

The provider is `WireflowProvider` (plugin name ``wireflow``); its emulator is
``imagegen_wireflow.emulator.create_emulator``.
"""

from .provider import WireflowProvider, WireflowSettings

__all__ = ["WireflowProvider", "WireflowSettings"]
