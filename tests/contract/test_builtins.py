"""Every built-in provider passes the provider contract (``imagegen.testing.contract``) against its
emulator, exactly as a third-party plugin's suite would run it (``tests/contract/test_example``
runs it on the worked example plugin)."""

from __future__ import annotations

from typing import Any, ClassVar

from imagegen.testing import Emulator, FaultPlan, LatencyModel
from imagegen.testing.contract import ProviderContract
from imagegen_gemini import GeminiProvider
from imagegen_gemini.emulator import create_emulator as gemini_emulator
from imagegen_nanobanana2 import NanoBanana2Provider
from imagegen_nanobanana2.emulator import create_emulator as nb2_emulator
from imagegen_openai import OpenAIProvider
from imagegen_openai.emulator import create_emulator as openai_emulator
from imagegen_wireflow import WireflowProvider
from imagegen_wireflow.emulator import create_emulator as wireflow_emulator

FAST = LatencyModel.none()


class TestGeminiContract(ProviderContract):
    provider = GeminiProvider

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        return gemini_emulator(faults=faults, latency=FAST, api_keys=api_keys, image_scale=0.05)


class TestOpenAIContract(ProviderContract):
    provider = OpenAIProvider

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        return openai_emulator(faults=faults, latency=FAST, api_keys=api_keys, image_scale=0.05)


class TestNanoBanana2SyncContract(ProviderContract):
    provider = NanoBanana2Provider
    mode: ClassVar[str] = "sync"

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        return nb2_emulator(faults=faults, latency=FAST, api_keys=api_keys, mode=self.mode, image_scale=0.05)


class TestNanoBanana2AsyncContract(TestNanoBanana2SyncContract):
    mode = "async"


class TestWireflowContract(ProviderContract):
    provider = WireflowProvider
    settings: ClassVar[dict[str, Any]] = {"persist_workflows": False, "executions_per_minute": 1000}

    def make_emulator(self, *, faults: FaultPlan, api_keys: list[str]) -> Emulator:
        return wireflow_emulator(faults=faults, latency=FAST, api_keys=api_keys,
                                 executions_per_minute=1000, output_max_side=64)
