"""The pure parts: the spec's own example bodies parse, graphs come from the node table,
prices carry their source."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import httpx
import pytest

from imagegen import (
    AuthenticationError,
    ImageRequest,
    InsufficientCreditsError,
    InvalidRequestError,
    InvalidResponseError,
    ProviderInvalidRequestError,
    RateLimitError,
)
from imagegen.provider import ErrorReply
from imagegen_wireflow._catalog import load_catalog
from imagegen_wireflow._graph import build_graph
from imagegen_wireflow._protocol import (
    execution_id_from,
    normalize_status,
    parse_poll,
)
from imagegen_wireflow.provider import WireflowProvider, WireflowSettings

CDN = "https://cdn.wireflow.ai/out.png"


@pytest.mark.parametrize("body", [
    {"workflowId": "cm1abc123", "executionRuns": [{"id": "exec_456", "status": "RUNNING"}]},  # P6
    {"executionId": "exec_456", "status": "RUNNING"},  # G1
    {"data": {"executionId": "exec_456", "status": "RUNNING"}},  # /run (P5, G1)
    {"executionId": "exec_456", "status": "queued", "message": "Workflow execution queued successfully"},  # P7
])
def test_execution_id_in_every_documented_place(body: dict[str, Any]) -> None:
    assert execution_id_from(body) == "exec_456"


def test_execute_answer_without_id_is_invalid() -> None:
    with pytest.raises(InvalidResponseError, match="no execution id"):
        execution_id_from({"data": {"status": "completed"}})  # G11's fixture


@pytest.mark.parametrize(("body", "status", "urls"), [
    ({"status": "COMPLETED", "nodeResults": {"nodeRuns": [
        {"nodeId": "node-1", "status": "COMPLETED", "output": {"images": [{"url": CDN}]}}]}}, "succeeded", [CDN]),
    ({"data": {"status": "COMPLETED", "nodeResults": {"nodeRuns": []}, "finalOutput": {"url": CDN}}},
     "succeeded", [CDN]),
    ({"status": "COMPLETED", "nodeStates": []}, "succeeded", []),  # G11 top-level upper case
    ({"data": {"status": "completed"}}, "succeeded", []),  # G11 nested lower case
    ({"data": {"status": "failed"}}, "failed", []),
    ({"status": "COMPLETED", "nodeStates": [
        {"nodeId": "in", "outputUrl": "https://cdn.wireflow.ai/ref.png"},
        {"nodeId": "film", "outputUrl": CDN, "outputUrls": [CDN, CDN + "2"]}]}, "succeeded", [CDN, CDN + "2"]),
    ({"status": "COMPLETED", "nodeResults": {"nodeRuns": [{"nodeId": "g", "output": CDN}]}}, "succeeded", [CDN]),
    ({"status": "COMPLETED", "nodeResults": {"nodeRuns": [{"nodeId": "g", "output": {"url": CDN}}]}},
     "succeeded", [CDN]),
    ({"status": "TIMEOUT"}, "failed", []),
    ({"status": "CANCELLED"}, "cancelled", []),
    ({"status": "IN_PROGRESS"}, "running", []),
    ({"status": "PENDING"}, "running", []),
    ({"status": "queued"}, "running", []),
])
def test_poll_shapes(body: dict[str, Any], status: str, urls: list[str]) -> None:
    state = parse_poll(body)
    assert (state.status, state.urls) == (status, urls)


def test_failed_poll_carries_the_node_error() -> None:
    state = parse_poll({"status": "FAILED", "error": "Execution failed", "nodeStates": [
        {"nodeId": "prompt", "status": "COMPLETED"},
        {"nodeId": "film", "status": "FAILED", "error": "Kling: image too small"}]})
    assert (state.status, state.error, state.failed_node) == ("failed", "Kling: image too small", "film")
    assert parse_poll({"status": "TIMEOUT"}).error == "the execution timed out on Wireflow (TIMEOUT)"


def test_unknown_status_is_running_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imagegen.wireflow"):
        assert normalize_status("WARMING_UP") == "running"
    assert "WARMING_UP" in caplog.text


def _headers(**values: str) -> httpx.Headers:
    return httpx.Headers({"X-Request-Id": "req_1", **{k.replace("_", "-"): v for k, v in values.items()}})


def error_from(status: int, headers: httpx.Headers, body: Any, *, text: str = "") -> Any:
    provider = WireflowProvider(instance_name="wireflow", http=httpx.AsyncClient(),
                                settings=WireflowSettings(api_key="k", persist_workflows=False))
    return provider.status_error(ErrorReply(status, headers, body, text))


@pytest.mark.parametrize("body", [
    {"error": "Insufficient credits. Required: 10, Available: 3", "insufficientCredits": True,
     "requiredCredits": 10, "availableCredits": 3,
     "breakdown": [{"nodeId": "node-1", "nodeLabel": "Text to Image", "credits": 10}]},
    {"error": {"type": "insufficient_credits_error", "message": "Insufficient credits. Required: 10, Available: 3",
               "code": "insufficient_credits"}, "requiredCredits": 10, "availableCredits": 3,
     "breakdown": [{"nodeId": "node-1", "nodeLabel": "Text to Image", "credits": 10}]},
])
def test_402_in_both_envelopes(body: dict[str, Any]) -> None:
    error = error_from(402, _headers(), body)
    assert isinstance(error, InsufficientCreditsError)
    assert (error.required, error.available, error.request_id) == (10, 3, "req_1")
    assert error.body["breakdown"][0]["credits"] == 10 and "Required: 10" in error.message


def test_stripe_error_with_message_only_and_unknown_body() -> None:
    error = error_from(401, _headers(), {"error": {"message": "create rejected"}})
    assert isinstance(error, AuthenticationError) and "create rejected" in error.message
    html = error_from(422, _headers(), None, text="an HTML page")
    assert isinstance(html, ProviderInvalidRequestError) and "an HTML page" in html.message


def test_429_body_retry_after_epoch() -> None:
    import time

    body = {"error": "Too many workflow executions. Please try again later.", "retryAfter": int(time.time()) + 20}
    error = error_from(429, _headers(), body)
    assert isinstance(error, RateLimitError) and 18 <= error.retry_after <= 20


# -- graphs and data ---------------------------------------------------------------------------

def _spec(model: str) -> Any:
    return next(m for m in WireflowProvider.models() if m.id == model)


def test_text_graph_matches_the_smallest_standard_graph() -> None:
    graph = build_graph(ImageRequest(prompt="a cow", aspect_ratio="9:16", n=2), _spec("nano_banana_2"), [])
    assert [n["data"]["nodeType"] for n in graph.nodes] == ["input:text", "generate:nano_banana_2"]
    assert graph.nodes[0]["data"]["config"] == {"prompt": "a cow"}
    assert graph.nodes[1]["data"]["config"] == {"aspect_ratio": "9:16", "resolution": "1K", "num_images": 2}
    assert graph.edges == [{"id": "e-prompt-generate-prompt", "source": "prompt", "target": "generate",
                            "sourceHandle": "out-prompt", "targetHandle": "in-prompt"}]
    assert graph.credits == 14


def test_edit_graph_wires_image_ports_and_shape_ignores_values() -> None:
    spec = _spec("nano_banana_pro")
    one = build_graph(ImageRequest(prompt="a", size="2K"), spec, ["https://x/1.png", "https://x/2.png"])
    two = build_graph(ImageRequest(prompt="b", size="4K"), spec, ["https://y/1.png", "https://y/2.png"])
    assert [e["targetHandle"] for e in one.edges] == ["in-prompt", "in-image1", "in-image2"]
    assert one.shape_key == two.shape_key and one.params_key != two.params_key
    assert one.nodes[1]["data"]["config"]["imageUrl"] == "https://x/1.png"
    assert one.nodes[1]["data"]["inputType"] == "image"


@pytest.mark.parametrize("where", ["params", "data"])
def test_param_location_variants(where: str) -> None:
    graph = build_graph(ImageRequest(prompt="a"), _spec("nano_banana_2"), [], where=where)  # type: ignore[arg-type]
    data = graph.nodes[0]["data"]
    assert (data[where]["prompt"] if where == "params" else data["prompt"]) == "a"


def test_pro_refuses_several_images_per_run() -> None:
    with pytest.raises(InvalidRequestError, match="one image per run"):
        build_graph(ImageRequest(prompt="a", n=2), _spec("nano_banana_pro"), [])


def test_every_price_has_a_source_and_date_and_models_match_the_spec() -> None:
    catalog = load_catalog()
    assert catalog.usd_per_credit == 0.01
    for node in catalog.nodes.values():
        assert node.credits_source and isinstance(node.credits_as_of, date)
    specs = {m.id: m for m in WireflowProvider.models()}
    assert WireflowProvider.default_model() == "nano_banana_2"
    nb2 = specs["nano_banana_2"]
    assert nb2.sizes == ["512", "1K", "2K", "4K"] and {"4:1", "1:8", "8:1", "1:4"} <= set(nb2.aspect_ratios)
    assert nb2.price.credits_per_image == {"*": 7} and nb2.price.image_usd("1K") == 0.07
    assert specs["nano_banana_pro"].price.credits_per_image == {"*": 20}
    for spec in specs.values():
        assert spec.price.source and spec.price.as_of


def test_estimate_uses_credits_and_names_the_node(tmp_path: Any) -> None:
    from imagegen import Client

    client = Client({"providers": {"wireflow": {"api_key": "sk-x"}}, "jobs": {"backend": "memory"}})
    cost = client.estimate("x", provider="wireflow", n=3)
    assert (cost.credits, cost.usd, cost.estimated) == (21, 0.21, True)
    assert cost.breakdown == {"generate:nano_banana_2": 21}
    client.close()
