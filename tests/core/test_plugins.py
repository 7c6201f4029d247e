"""The plugin system, exercised through real entry-point discovery of an installed distribution."""

import json
import subprocess
import sys

import pytest

from imagegen import Client, UnknownProviderError
from imagegen._plugins import registry


def test_third_party_plugin_generates_through_the_client(tinyplug):
    with Client({"jobs": {"backend": "memory"}}) as client:
        result = client.generate("a lighthouse", provider="tinyplug", size="M", aspect_ratio="2:1")
    assert result.provider == "tinyplug"
    assert result.model == "tiny-1"
    assert (result.images[0].width, result.images[0].height) == (128, 64)
    assert result.images[0].mime_type == "image/png"


def test_third_party_plugin_in_a_fresh_process(tinyplug):
    """No in-process registration at all: a new interpreter finds the plugin by its entry point."""
    code = ("from imagegen import Client\n"
            "r = Client({'jobs': {'backend': 'memory'}}).generate('x', provider='tinyplug')\n"
            "print(r.provider, r.images[0].width)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tinyplug", "32"]


def test_allow_list_excludes_other_plugins(tinyplug, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_LOAD_PLUGINS", "tinyplug")
    registry.reset()
    assert set(registry.providers()) == {"tinyplug"}
    assert "imagegen_gemini" not in registry.plugin_manager.list_name_plugin()


def test_empty_allow_list_loads_nothing(tinyplug, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_LOAD_PLUGINS", "")
    registry.reset()
    assert registry.providers() == {}
    with pytest.raises(UnknownProviderError, match="no plugins loaded"):
        registry.provider_class("tinyplug")


def test_disable_list_skips_a_plugin(tinyplug, monkeypatch):
    monkeypatch.setenv("IMAGEGEN_DISABLE_PLUGINS", "tinyplug, other")
    registry.reset()
    assert "tinyplug" not in registry.providers()
    with pytest.raises(UnknownProviderError, match="tinyplug"):
        Client({"jobs": {"backend": "memory"}}).generate("x", provider="tinyplug")


def test_cli_lists_the_plugin(tinyplug):
    out = subprocess.run([sys.executable, "-m", "imagegen", "providers", "--json"],
                         capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)["providers"]
    tiny = [r for r in rows if r["provider"] == "tinyplug"]
    assert tiny and tiny[0]["model"] == "tiny-1"
    assert tiny[0]["price"]["per_image_usd"] == {"S": 0.01, "M": 0.02}
