"""The money errors: where they sit in the tree, what they carry, how the CLI reports them."""

from __future__ import annotations

import imagegen
from imagegen import (
    IdempotencyConflictError,
    ImageGenError,
    InvalidRequestError,
    OutputUnavailableError,
    ProviderError,
    StorageError,
)
from imagegen._errors import __doc__ as TREE
from imagegen.cli import EXIT_STORAGE, exit_code_for


def test_the_new_errors_sit_where_the_tree_says():
    assert issubclass(OutputUnavailableError, ProviderError)
    assert issubclass(StorageError, ImageGenError) and not issubclass(StorageError, ProviderError)
    assert issubclass(IdempotencyConflictError, InvalidRequestError)
    for name in ("OutputUnavailableError", "StorageError", "IdempotencyConflictError"):
        assert name in imagegen.__all__ and f"── {name}" in TREE


def test_output_unavailable_is_not_retryable_and_names_the_job():
    error = OutputUnavailableError("gone", provider="nb2", job_id="nb2:j1", urls=["https://cdn/x.png"])
    assert error.retryable is False
    payload = error.to_dict()
    assert payload["job_id"] == "nb2:j1" and payload["urls"] == ["https://cdn/x.png"]
    assert payload["type"] == "OutputUnavailableError" and payload["provider"] == "nb2"


def test_storage_error_names_the_store_and_exits_5():
    error = StorageError("the ledger is locked", store="ledger")
    assert error.to_dict()["store"] == "ledger"
    assert exit_code_for(error) == EXIT_STORAGE == 5


def test_idempotency_conflict_is_an_invalid_request():
    error = IdempotencyConflictError("key reused", idempotency_key="order-1")
    assert error.idempotency_key == "order-1" and exit_code_for(error) == 2
