"""Every documented response variant, end to end over loopback: the emulator speaks it,
the provider reads it, and the images come back from the emulator's own URLs."""

from __future__ import annotations

from typing import Any

import pytest

from imagegen.testing import synth_image

# Emulator options: one per documented contradiction the client must accept.
EMULATOR_VARIANTS: dict[str, dict[str, Any]] = {
    "docs": {"dialect": "docs"},
    "scripts": {"dialect": "scripts"},
    "C3 execute {executionId,status}": {"execute_shape": "executionId"},
    "C3 execute under data": {"execute_shape": "data"},
    "C3 execute executionRuns in scripts": {"dialect": "scripts", "execute_shape": "executionRuns"},
    "C18 execute 200": {"execute_status": 200},
    "C14 poll nodeRuns (P2)": {"poll_shape": "nodeRuns"},
    "C14 poll top-level nodeStates (G3/G10)": {"poll_shape": "nodeStates"},
    "C14 poll data+finalOutput only (G1)": {"poll_shape": "finalOutput"},
    "C14 poll data with all (G2)": {"poll_shape": "data"},
    "C19 lower-case statuses": {"status_case": "lower"},
    "C19 lower-case in scripts": {"dialect": "scripts", "status_case": "lower"},
    "node output {url}": {"node_output": "url"},
    "node output string": {"node_output": "string"},
    "PENDING first (K1)": {"initial_status": "PENDING", "queued_s": 0.1},
    "IN_PROGRESS first (K3)": {"initial_status": "IN_PROGRESS", "queued_s": 0.1},
    "C15 bare envelope in scripts": {"dialect": "scripts", "envelope": "bare"},
    "C15 data envelope in docs": {"dialect": "docs", "envelope": "data"},
    "C7 stripe errors in docs": {"dialect": "docs", "error_style": "stripe"},
}

# Client settings: the variants the client chooses (where to write params, which endpoint).
CLIENT_VARIANTS: dict[str, dict[str, Any]] = {
    "C5 config": {"param_location": "config"},
    "C5 params": {"param_location": "params"},
    "C5 data": {"param_location": "data"},
    "P5 /run with inputs": {"execute_mode": "run"},
    "C2 poll /workflows/executions/{id}": {"poll_path": "/workflows/executions/{id}"},
    "C2 poll /executions/{id}/poll": {"poll_path": "/executions/{id}/poll"},
}


@pytest.mark.parametrize("options", list(EMULATOR_VARIANTS.values()), ids=list(EMULATOR_VARIANTS))
def test_generate_reads_every_emulator_variant(make_env: Any, options: dict[str, Any]) -> None:
    env = make_env(**options)
    client = env.client()
    result = client.generate("a red fox in snow", provider="wireflow", aspect_ratio="16:9", size="1K")
    assert len(result.images) == 1
    image = result.images[0]
    assert image.mime_type == "image/jpeg" and (image.width, image.height) == (1365, 768)
    assert image.url and image.url.startswith(env.server.base_url + "/files/")
    assert result.metadata["output_urls"] == [image.url]
    assert result.provider == "wireflow" and result.model == "nano_banana_2"
    assert env.counters.get("executions") == 1
    assert env.counters.total_credits == 7


@pytest.mark.parametrize("settings", list(CLIENT_VARIANTS.values()), ids=list(CLIENT_VARIANTS))
@pytest.mark.parametrize("dialect", ["docs", "scripts"])
def test_generate_with_every_client_variant(make_env: Any, settings: dict[str, Any], dialect: str) -> None:
    env = make_env(dialect=dialect)
    client = env.client(**settings)
    result = client.generate("a lighthouse", provider="wireflow", aspect_ratio="9:16", size="2K")
    assert [(i.width, i.height) for i in result.images] == [(1536, 2731)]
    assert env.counters.get("executions") == 1


def test_poll_path_variant_is_required_when_server_has_only_that_one(make_env: Any) -> None:
    env = make_env(only_poll_path="short")
    result = env.client(poll_path="/executions/{id}/poll").generate("x", provider="wireflow")
    assert len(result.images) == 1


def test_several_images_per_execution_are_all_downloaded(make_env: Any) -> None:
    env = make_env(dialect="scripts")
    result = env.client().generate("four cats", provider="wireflow", n=4)
    assert len(result.images) == 4 and len({i.url for i in result.images}) == 4
    assert env.counters.get("executions") == 1 and env.counters.total_credits == 28


def test_n_above_the_per_call_maximum_is_split_into_executions(env: Any) -> None:
    result = env.client().generate("two pro images", provider="wireflow", model="nano_banana_pro", n=2)
    assert len(result.images) == 2
    assert env.counters.get("executions") == 2 and env.counters.total_credits == 40


@pytest.mark.parametrize("dialect", ["docs", "scripts"])
def test_edit_uploads_reference_images_and_wires_them(make_env: Any, dialect: str) -> None:
    env = make_env(dialect=dialect)
    refs = [synth_image(64, 48, "png", seed=1), synth_image(40, 40, "png", seed=2)]
    result = env.client().edit("put both in one scene", images=refs, provider="wireflow",
                               model="nano_banana_pro", aspect_ratio="4:5")
    assert len(result.images) == 1 and result.images[0].mime_type == "image/png"
    assert env.counters.get("uploads") == 2
    assert env.counters.get("reference_images") == 2
    execution = next(iter(env.emulator.executions.values()))
    handles = sorted(e["targetHandle"] for e in execution.edges)
    assert handles == ["in-image1", "in-image2", "in-prompt"]


def test_reference_image_urls_pass_through_without_upload(env: Any) -> None:
    url = env.server.base_url + env.emulator.store_file(synth_image(32, 32, "png"), "image/png")
    result = env.client().edit("restyle", images=[url], provider="wireflow")
    assert len(result.images) == 1
    assert env.counters.get("uploads") == 0 and env.counters.get("reference_images") == 1


@pytest.mark.parametrize("status", [301, 308])
def test_redirects_keep_method_and_body(make_env: Any, status: int) -> None:
    env = make_env(redirect_status=status)
    client = env.client(base_url=env.server.base_url + "/legacy/api/v1")
    result = client.generate("moved", provider="wireflow")
    assert len(result.images) == 1
    calls = env.counters.calls
    assert calls["POST /legacy/{path:path}"] >= 2  # create + execute came through the redirect
    assert calls["POST /api/v1/workflows/{wid}/execute"] == 1


async def test_async_client_same_result(env: Any) -> None:
    async with env.async_client() as client:
        result = await client.generate("async fox", provider="wireflow")
    assert len(result.images) == 1 and env.counters.get("executions") == 1
