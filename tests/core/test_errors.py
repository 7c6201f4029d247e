"""The exception tree: drawn once in ``imagegen._errors``' docstring, and the drawing is the truth."""

from __future__ import annotations

import re

import pytest

import imagegen
from imagegen import _errors

_LINE = re.compile(r"^    (?P<indent>[ │]*)(?P<branch>[├└]── )?(?P<name>\w+Error)"
                   r"(?:\s+\(also an? (?P<also>\w+)\))?\s*$")


def _drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """name -> (drawn parent, "also a" second base) from the docstring."""
    tree: dict[str, tuple[str | None, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in (_errors.__doc__ or "").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match["indent"]) // 4 + (1 if match["branch"] else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        tree[match["name"]] = (stack[-1][1] if stack else None, match["also"])
        stack.append((depth, match["name"]))
    return tree


def test_the_docstring_tree_matches_the_classes() -> None:
    tree = _drawn_tree()
    exported = {name for name in imagegen.__all__ if name.endswith("Error")}
    assert set(tree) == exported
    for name, (parent, also) in tree.items():
        cls = getattr(imagegen, name)
        if parent is None:
            assert cls.__bases__ == (Exception,), name
            continue
        assert cls.__bases__[0] is getattr(imagegen, parent), (name, parent)
        assert len(cls.__bases__) == (2 if also else 1), name
        if also:
            assert issubclass(cls, getattr(imagegen, also)), (name, also)


def test_fields_are_constructor_arguments() -> None:
    error = imagegen.ProviderUnavailableError("down", provider="p", status_code=503, request_id="r1", code="busy",
                                              retry_after=2.5, body={"error": "busy"})
    assert (error.provider, error.status_code, error.request_id, error.code, error.retry_after, error.body) == (
        "p", 503, "r1", "busy", 2.5, {"error": "busy"})
    assert error.to_dict() == {"type": "ProviderUnavailableError", "message": "down", "provider": "p",
                               "status_code": 503, "retryable": True, "retry_after": 2.5}
    assert imagegen.ProviderError("x", retryable=True).retryable is True


@pytest.mark.parametrize("cls", [imagegen.ProviderInvalidRequestError, imagegen.ProviderInvalidImageError])
def test_provider_side_invalid_requests_are_both_kinds(cls: type[imagegen.ProviderError]) -> None:
    error = cls("Aspect ratio 1:4 is not supported for this model", provider="gemini", status_code=400)
    assert isinstance(error, imagegen.ProviderError) and isinstance(error, imagegen.InvalidRequestError)
    assert not error.retryable and error.to_dict()["status_code"] == 400


def test_an_error_that_is_not_a_provider_error_reports_no_provider_fields() -> None:
    assert imagegen.InvalidRequestError("empty prompt").to_dict() == {
        "type": "InvalidRequestError", "message": "empty prompt", "provider": None, "status_code": None,
        "retryable": False, "retry_after": None}
