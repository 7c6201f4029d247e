import subprocess
import sys

import pytest

import imagegen


def test_all_is_sorted_and_complete():
    assert imagegen.__all__ == sorted(imagegen.__all__)
    public = {name for name in dir(imagegen) if not name.startswith("_")}
    # Submodules are not exported names; everything else public must be listed.
    modules = {name for name in public if type(getattr(imagegen, name)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(imagegen.__all__)


def test_exported_classes_claim_the_public_module():
    classes = [getattr(imagegen, n) for n in imagegen.__all__ if isinstance(getattr(imagegen, n), type)]
    assert len(classes) > 30
    for cls in classes:
        assert cls.__module__ == "imagegen", cls


def test_every_error_derives_from_the_root():
    errors = [getattr(imagegen, n) for n in imagegen.__all__ if n.endswith("Error")]
    assert len(errors) >= 20
    for cls in errors:
        assert issubclass(cls, imagegen.ImageGenError)
        assert cls.__doc__ and cls.__doc__.strip()


def test_import_is_light():
    code = ("import sys, imagegen; heavy = [m for m in ('google.genai', 'starlette', 'uvicorn', 'redis', "
            "'PIL', 'typer', 'imagegen.testing', 'imagegen.cli') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_does_not_discover_plugins():
    code = ("import imagegen, imagegen._plugins as p; "
            "print(p.registry._pm is None, 'imagegen_gemini' in __import__('sys').modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_the_provider_kit_exports_a_sorted_complete_all():
    import imagegen.provider as kit

    # Sorted as ruff keeps it (RUF022): constants first, then the rest in plain order.
    assert kit.__all__ == sorted(kit.__all__, key=lambda name: (not name.isupper(), name))
    public = {name for name in dir(kit) if not name.startswith("_")}
    assert public - {"annotations"} == set(kit.__all__)
    kit_classes = [getattr(kit, n) for n in kit.__all__ if isinstance(getattr(kit, n), type)]
    assert {cls.__module__ for cls in kit_classes} <= {"imagegen", "imagegen.provider"}


def test_kit_names_imagegen_used_to_export_still_resolve_with_a_warning():
    import imagegen.provider as kit

    for name in ("Provider", "ProviderSettings", "PollSchedule", "AdaptivePollSchedule", "hookimpl"):
        with pytest.warns(DeprecationWarning, match=f"imagegen.provider.{name}"):
            assert getattr(imagegen, name) is getattr(kit, name)
    with pytest.raises(AttributeError):
        imagegen.NoSuchThing  # noqa: B018
