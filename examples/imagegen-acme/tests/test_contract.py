"""The provider contract: the same checks every built-in provider passes."""

from __future__ import annotations

from imagegen_acme import AcmeProvider
from imagegen_acme.emulator import create_emulator

from imagegen.testing import Emulator, FaultPlan
from imagegen.testing.contract import ProviderContract


class TestAcmeContract(ProviderContract):
    provider = AcmeProvider

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        return create_emulator(faults=faults, api_keys=api_keys)
