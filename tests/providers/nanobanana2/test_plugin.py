"""The plugin: found through its entry point, light to import, its data and exports complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

import imagegen_nanobanana2
from imagegen import Client, MissingCredentialsError
from imagegen._plugins import registry
from imagegen_nanobanana2 import NanoBanana2Provider


def test_registered_through_the_entry_point():
    assert registry.provider_class("nanobanana2") is NanoBanana2Provider


def test_all_is_sorted_and_complete():
    assert imagegen_nanobanana2.__all__ == sorted(imagegen_nanobanana2.__all__)
    public = {n for n in dir(imagegen_nanobanana2) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(imagegen_nanobanana2, n)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(imagegen_nanobanana2.__all__)


def test_plugin_and_provider_import_nothing_heavy():
    code = ("import sys, imagegen; from imagegen._plugins import registry; registry.providers(); "
            "import imagegen_nanobanana2; "
            "print(','.join(m for m in ('starlette', 'uvicorn', 'google.genai', 'PIL', 'vcr', "
            "'imagegen.testing', 'imagegen_nanobanana2.emulator') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_model_data_has_sourced_prices():
    [spec] = NanoBanana2Provider.models()
    assert spec.price is not None and spec.price.source and spec.price.as_of.year == 2025
    assert spec.price.per_image_usd == {"*": 0.039} and spec.price.credits_per_image == {"*": 4}
    assert set(spec.options) == {"blend", "blend_strength", "check_credits", "guidance_scale",
                                 "style_reference_url", "style_strength"}
    assert set(spec.extra["native_sizes"]) == set(spec.aspect_ratios) - {"auto"}
    assert NanoBanana2Provider.emulator == "imagegen_nanobanana2.emulator:create_emulator"


@pytest.mark.parametrize("var", ["NANO_BANANA_API_KEY", "NANOBANANA2_API_KEY"])
def test_api_key_from_either_environment_variable(monkeypatch, var):
    monkeypatch.delenv("NANOBANANA2_API_KEY", raising=False)
    monkeypatch.setenv(var, "nb2_from_env")
    with Client({"providers": {"nanobanana2": {}}, "jobs": {"backend": "memory"}}) as client:
        provider = client.provider("nanobanana2")
        assert provider.api_key.get_secret_value() == "nb2_from_env"
        assert provider.base_url == "https://api.nano-banana2.com/api/v1"
        assert "nb2_from_env" not in repr(provider)


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("NANOBANANA2_API_KEY", raising=False)
    with Client({"providers": {"nanobanana2": {}}, "jobs": {"backend": "memory"}}) as client:
        with pytest.raises(MissingCredentialsError, match="NANO_BANANA_API_KEY"):
            client.provider("nanobanana2")


def test_bare_host_base_url_gets_the_api_path():
    with Client({"providers": {"nanobanana2": {"api_key": "k", "base_url": "https://api.nano-banana2.com"}},
                 "jobs": {"backend": "memory"}}) as client:
        assert client.provider("nanobanana2").base_url == "https://api.nano-banana2.com/api/v1"


def test_emulator_options_accept_strings():
    from imagegen_nanobanana2.emulator import create_emulator

    emulator = create_emulator(mode="async", ticks="3", fail_webhooks="true", api_keys="a,b")
    assert (emulator.ticks, emulator.fail_webhooks) == (3, True)
    assert "a" in emulator.api_keys and "b" in emulator.api_keys and "c" not in emulator.api_keys
    with pytest.raises(ValueError, match="mode"):
        create_emulator(mode="later")
