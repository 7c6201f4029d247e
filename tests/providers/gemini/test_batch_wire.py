"""The Batch API's wire formats, read and written without any I/O."""

from __future__ import annotations

import json

import pytest

from imagegen import ImageRequest
from imagegen_gemini import GeminiProvider
from imagegen_gemini._batch_wire import (
    INLINE_LIMIT_BYTES,
    MemberRequest,
    choose_delivery,
    expected_answer_bytes,
    file_body,
    http_status_of,
    inline_body,
    jsonl_lines,
    outcomes_of_inline,
    outcomes_of_jsonl,
    read_operation,
    sent_batch,
)

SPECS = {spec.id: spec for spec in GeminiProvider.models()}
PRO = SPECS["gemini-3-pro-image"]


def test_small_batches_go_inline_and_large_ones_as_a_file() -> None:
    assert choose_delivery([1_000], [1_000_000]) == "inline"
    # The answers count twice: a finished inline batch carries them under response and metadata.output.
    assert choose_delivery([1_000], [INLINE_LIMIT_BYTES // 2]) == "file"
    assert choose_delivery([INLINE_LIMIT_BYTES + 1], [0]) == "file"


def test_expected_answer_grows_with_the_image_and_counts_signatures() -> None:
    one_k = expected_answer_bytes(ImageRequest(prompt="x", size="1K", aspect_ratio="1:1"), PRO)
    four_k = expected_answer_bytes(ImageRequest(prompt="x", size="4K", aspect_ratio="1:1"), PRO)
    assert 3_000_000 < one_k < four_k  # the signature allowance alone is 3 MB
    # About three 1K 3.x answers fit the 20 MB inline bound (twice each); ten do not.
    answers = [one_k] * 2
    assert choose_delivery([500, 500], answers) == "inline"
    assert choose_delivery([500] * 10, [one_k] * 10) == "file"


def test_bodies_and_input_file_put_each_request_under_its_key() -> None:
    members = [MemberRequest("k1", {"contents": [{"role": "user", "parts": [{"text": "a"}]}]}),
               MemberRequest("k2", {"contents": [{"role": "user", "parts": [{"text": "b"}]}]})]
    body = inline_body("shots", members)
    requests = body["batch"]["inputConfig"]["requests"]["requests"]
    assert body["batch"]["displayName"] == "shots"
    assert [r["metadata"]["key"] for r in requests] == ["k1", "k2"]
    assert requests[1]["request"]["contents"][0]["parts"][0]["text"] == "b"
    assert file_body("shots", "files/abc") == {"batch": {"displayName": "shots",
                                                         "inputConfig": {"fileName": "files/abc"}}}
    lines = [json.loads(line) for line in jsonl_lines(members)]
    assert lines == [{"key": "k1", "request": members[0].body}, {"key": "k2", "request": members[1].body}]


def _operation(**metadata: object) -> dict:
    return {"name": "batches/b1", "metadata": {"name": "batches/b1", **metadata}}


def test_a_pending_batch_with_string_counts() -> None:
    snapshot = read_operation(_operation(state="BATCH_STATE_PENDING", batchStats={"requestCount": "3",
                                                                                  "pendingRequestCount": "3"}))
    assert (snapshot.state, snapshot.done, snapshot.stats) == ("pending", False, {"requestCount": 3,
                                                                                  "pendingRequestCount": 3})
    assert snapshot.inline is None and snapshot.responses_file is None


@pytest.mark.parametrize("where", ["response", "metadata.output"])
def test_inline_output_is_read_from_either_place_and_matched_by_key(where: str) -> None:
    answers = {"inlinedResponses": {"inlinedResponses": [
        {"metadata": {"key": "b"}, "error": {"code": 8, "message": "quota"}},
        {"metadata": {"key": "a"}, "response": {"candidates": []}},
        {"response": {"candidates": []}},  # no key: cannot be matched, so it is not guessed
    ]}}
    operation = _operation(state="BATCH_STATE_SUCCEEDED")
    if where == "response":
        operation["response"] = {"@type": "x", **answers}
    else:
        operation["metadata"]["output"] = answers
    snapshot = read_operation(operation)
    assert snapshot.done and snapshot.state == "succeeded"
    outcomes = outcomes_of_inline(snapshot.inline or [])
    assert list(outcomes) == ["b", "a"]  # answer order, not request order: matched by key
    assert outcomes["a"] == {"response": {"candidates": []}}
    assert outcomes["b"] == {"error": {"code": 8, "message": "quota"}}


def test_file_output_and_its_lines() -> None:
    operation = _operation(state="JOB_STATE_SUCCEEDED", output={"responsesFile": "files/out"})
    assert read_operation(operation).responses_file == "files/out"
    data = b'{"key": "a", "response": {"x": 1}}\n\nnot json\n{"key": "b", "error": {"code": 13, "message": "m"}}\n'
    assert outcomes_of_jsonl(data) == {"a": {"response": {"x": 1}}, "b": {"error": {"code": 13, "message": "m"}}}


@pytest.mark.parametrize(("state", "expected"), [
    ("BATCH_STATE_RUNNING", "running"), ("BATCH_STATE_EXPIRED", "expired"), ("BATCH_STATE_CANCELLED", "cancelled"),
    ("JOB_STATE_FAILED", "failed"), ("BATCH_STATE_SOMETHING_NEW", "running"), (None, "pending")])
def test_states(state: str | None, expected: str) -> None:
    assert read_operation(_operation(state=state)).state == expected


def test_an_operation_error_ends_the_batch() -> None:
    operation = {**_operation(state="BATCH_STATE_RUNNING"), "error": {"code": 13, "message": "boom"}}
    snapshot = read_operation(operation)
    assert snapshot.state == "failed" and snapshot.error == {"code": 13, "message": "boom"}


def test_a_name_that_is_not_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="batches/"):
        read_operation({"name": "operations/x", "metadata": {}})


@pytest.mark.parametrize(("status", "expected"), [
    ({"code": 8}, (429, "RESOURCE_EXHAUSTED")), ({"code": 14}, (503, "UNAVAILABLE")),
    ({"code": 3, "status": "INVALID_ARGUMENT"}, (400, "INVALID_ARGUMENT")), ({"code": 503}, (503, "")),
    ({"code": "nonsense"}, (500, "UNKNOWN"))])
def test_member_status_codes_are_grpc_codes(status: dict, expected: tuple[int, str]) -> None:
    assert http_status_of(status) == expected


def _listed(name: str, display: str, created: str, count: int = 2, model: str = "models/gemini-3-pro-image") -> dict:
    return {"name": name, "metadata": {"displayName": display, "model": model, "createTime": created,
                                       "batchStats": {"requestCount": str(count)}}}


def test_a_batch_whose_create_answer_was_lost_is_found_only_when_unambiguous() -> None:
    since = 1796040000.0  # 2026-11-30T12:00:00Z
    mine = _listed("batches/mine", "nightly", "2026-11-30T12:00:01.123456789Z")
    find: dict = {"display_name": "nightly", "model": PRO.id, "requests": 2, "since": since}
    assert sent_batch({"operations": [mine]}, **find) == "batches/mine"
    assert sent_batch({"operations": [_listed("batches/x", "other", "2026-11-30T12:00:01Z"), mine]},
                      **find) == "batches/mine"
    yesterday = _listed("batches/old", "nightly", "2026-11-29T12:00:00Z")
    assert sent_batch({"operations": [yesterday]}, **find) is None  # a name reused night after night
    assert sent_batch({"operations": [_listed("batches/big", "nightly", "2026-11-30T12:00:01Z", count=3)]},
                      **find) is None
    twin = _listed("batches/twin", "nightly", "2026-11-30T12:00:02Z")
    assert sent_batch({"operations": [mine, twin]}, **find) is None  # two could be ours: neither is taken
    assert sent_batch({}, **find) is None
