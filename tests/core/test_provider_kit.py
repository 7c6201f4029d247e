"""The provider kit's promises: providers need nothing private, and a provider's bug is a bug.

A bug in a plugin's own code (a KeyError outside ``parsing()``) must surface once, with its
traceback: not retried, not counted against the provider's circuit, not routed around. An
answer the plugin cannot read (inside ``parsing()``) is the vendor's fault: a retryable
InvalidResponseError that does all three.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from imagegen import AllProvidersFailedError, AsyncClient, Client, InvalidResponseError

ROOT = Path(__file__).resolve().parents[2]

ROUTE = {
    "jobs": {"backend": "memory"}, "cache": {"backend": "off"},
    "retry": {"max_attempts": 3, "initial_backoff_s": 0.001, "max_backoff_s": 0.002},
    "circuit": {"failure_threshold": 5},
    "providers": {"first": {"plugin": "tinyplug"}, "second": {"plugin": "tinyplug"}},
    "routes": {"both": {"chain": ["first", "second"]}},
}


def _private_imports(path: Path, root: Path = ROOT) -> list[str]:
    """Every imagegen name *path* imports that is not public: a module with a ``_`` part, or a
    name missing from its public module's ``__all__`` (``imagegen``, ``imagegen.provider``,
    ``imagegen.testing``, ``imagegen.testing.contract``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module, names = node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            module, names = "", [a.name for a in node.names]
        else:
            continue
        for name in names:
            dotted = f"{module}.{name}" if module else name
            if dotted.split(".")[0] != "imagegen":
                continue
            if any(part.startswith("_") for part in dotted.split(".")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {dotted}")
            elif module and name not in importlib.import_module(module).__all__:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {dotted} (not in {module}.__all__)")
    return found


def test_providers_import_only_public_imagegen_names() -> None:
    """Built-ins (their emulators too) and the example plugin are written with public names only."""
    files = sorted(ROOT.glob("providers/**/*.py")) + sorted(ROOT.glob("examples/**/*.py"))
    packages = {path.relative_to(ROOT).parts[1] for path in files}
    assert packages >= {"gemini", "nanobanana2", "openai", "wireflow", "imagegen-acme"}
    assert any(path.name.startswith(("emulator", "_emulator")) for path in files)
    assert [hit for path in files for hit in _private_imports(path)] == []


def test_the_import_check_sees_private_names(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import imagegen._http\n"
        "from imagegen.testing._middleware import ConnectionDropped\n"
        "from imagegen.provider import _guard\n"
        "from imagegen import Client, typing\n"
        "def f():\n    from imagegen._models import make_job_id\n",
        encoding="utf-8",
    )
    hits = [hit.split(": ", 1)[1] for hit in _private_imports(plugin, tmp_path)]
    assert hits == ["imagegen._http", "imagegen.testing._middleware.ConnectionDropped",
                    "imagegen.provider._guard", "imagegen.typing (not in imagegen.__all__)",
                    "imagegen._models.make_job_id"]


def test_a_provider_bug_surfaces_once_with_its_traceback(tinyplug: Path) -> None:
    from imagegen_tinyplug import CALLS

    CALLS.clear()
    with Client(ROUTE) as client:
        with pytest.raises(KeyError, match="missing") as info:
            client.generate("[[crash]]", provider="both")
        assert info.traceback[-1].name == "_read_answer"  # raised where the bug is, not re-wrapped
        assert not isinstance(info.value, InvalidResponseError) and info.value.__cause__ is None
        assert dict(CALLS) == {"first": 1}  # not retried, not routed to "second"
        assert client.circuit_state("first") == {"state": "closed", "failures": 0, "retry_in_s": None}
        assert client.generate("a fox", provider="both").provider == "first"  # the provider still serves


def test_an_unreadable_answer_is_retried_counted_and_routed_around(tinyplug: Path) -> None:
    from imagegen_tinyplug import CALLS

    CALLS.clear()
    with Client(ROUTE) as client:
        with pytest.raises(AllProvidersFailedError) as info:
            client.generate("[[unreadable]]", provider="both")
        assert dict(CALLS) == {"first": 3, "second": 3}
        assert {a.error_type for a in info.value.attempts} == {"InvalidResponseError"}
        assert client.circuit_state("first")["failures"] == 3


async def test_a_bug_during_a_half_open_probe_releases_the_circuit(tinyplug: Path) -> None:
    from imagegen_tinyplug import CALLS

    config = {**ROUTE, "circuit": {"failure_threshold": 1, "cooldown_s": 0.0}, "retry": {"max_attempts": 1}}
    async with AsyncClient(config) as client:
        with pytest.raises(AllProvidersFailedError):
            await client.generate("[[unavailable]]", provider="both")
        assert client.circuit_state("first")["state"] == "open"
        CALLS.clear()
        with pytest.raises(KeyError):  # the probe: a bug, no verdict on the provider's health
            await client.generate("[[crash]]", provider="first")
        assert (await client.generate("a fox", provider="first")).images  # the next probe is let through
        assert dict(CALLS) == {"first": 2}


def test_an_inline_image_is_read_from_its_bytes_and_a_bad_one_is_the_vendors_fault() -> None:
    import base64

    from imagegen.provider import decode_base64, decode_image
    from imagegen.testing import synth_image

    png = synth_image(8, 4, "png", seed=1)
    warnings: list[str] = []
    image = decode_image(base64.b64encode(png).decode(), provider="acme", declared="IMAGE/JPEG", warnings=warnings)
    assert (image.data, image.mime_type, image.width, image.height) == (png, "image/png", 8, 4)
    assert warnings == ["acme declared image/jpeg but the bytes are image/png; the bytes were trusted"]
    assert decode_image(png, provider="acme").data == png
    assert decode_base64("data:image/png;base64," + base64.b64encode(png).decode()) == png
    cut = base64.b64encode(png).decode()[:-2]
    for broken in (cut, "", None, "ab!=", base64.b64encode(b"text, not an image").decode()):
        with pytest.raises(InvalidResponseError, match="acme returned an unreadable image") as info:
            decode_image(broken, provider="acme")
        assert info.value.status_code == 200 and info.value.retryable


def test_the_default_model_is_the_one_the_data_flags() -> None:
    from imagegen import ModelSpec
    from imagegen.provider import Provider

    class Flagged(Provider):
        name = "flagged"

        @classmethod
        def models(cls) -> list[ModelSpec]:
            return [ModelSpec(id="a"), ModelSpec(id="b", extra={"default": True})]

    class Unflagged(Flagged):
        @classmethod
        def models(cls) -> list[ModelSpec]:
            return [ModelSpec(id="a"), ModelSpec(id="b")]

    assert (Flagged.default_model(), Unflagged.default_model()) == ("b", "a")


def test_a_rate_comes_from_the_price_book_and_is_zero_when_missing() -> None:
    from datetime import date

    from imagegen import ModelSpec
    from imagegen.provider import Price

    priced = ModelSpec(id="a", price=Price(source="s", as_of=date(2026, 1, 1), rates={"input_per_mtok": 2.5}))
    assert (priced.rate("input_per_mtok"), priced.rate("other")) == (2.5, 0)
    assert ModelSpec(id="b").rate("input_per_mtok") == 0


def test_vendor_objects_numbers_and_times_are_read_or_empty() -> None:
    from datetime import UTC, datetime

    from imagegen.provider import json_object, json_objects, parse_number, parse_time

    assert (json_object({"a": 1}), json_object([1]), json_object(None)) == ({"a": 1}, {}, {})
    assert json_objects([{"a": 1}, 2, None, {}]) == [{"a": 1}, {}]
    assert json_objects({"a": 1}) == json_objects("[]") == []
    assert [parse_number(v) for v in (12, 1.5, "12", " 3.25 ")] == [12.0, 1.5, 12.0, 3.25]
    assert [parse_number(v) for v in (True, None, "twelve", "nan", float("inf"), [1])] == [None] * 6
    nanos = parse_time("2026-11-30T12:00:00.123456789Z")
    assert nanos == datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2026-11-30T12:00:00") == datetime(2026, 11, 30, 12, tzinfo=UTC)  # no zone: UTC
    assert parse_time("2026-11-30T14:00:00+02:00") == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert [parse_time(v) for v in ("", "yesterday", 1764504000, None)] == [None] * 4


def test_translating_raises_what_translate_error_maps_and_leaves_bugs_alone() -> None:
    import httpx

    from imagegen import ProviderTimeoutError
    from imagegen.provider import Provider, ProviderSettings

    class Sdk(Provider):
        name = "sdk"
        requires_api_key = False

    provider = Sdk(instance_name="sdk", settings=ProviderSettings(), http=httpx.AsyncClient())
    with pytest.raises(ProviderTimeoutError) as info, provider.translating():
        raise httpx.ReadTimeout("slow")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    with pytest.raises(KeyError), provider.translating():  # a bug: unchanged, with its traceback
        raise KeyError("candidates")
