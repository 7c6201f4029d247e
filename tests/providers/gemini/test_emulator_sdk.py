"""The emulator checked with the real google-genai SDK (sync and async) and with raw HTTP."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image as PILImage

from imagegen import Client
from imagegen.testing import LatencyModel, serve
from imagegen_gemini.emulator import create_emulator

from .conftest import API_KEY, config, png_bytes


def sdk(base_url: str, *, api_version: str = "v1beta", vertexai: bool = False, key: str = API_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=base_url, api_version=api_version, timeout=30_000,
                                httpx_client=httpx.Client(), httpx_async_client=httpx.AsyncClient())
    return genai.Client(api_key=key, vertexai=vertexai or None, http_options=options)


def _size(data: bytes) -> tuple[str, int, int]:
    with PILImage.open(io.BytesIO(data)) as img:
        return img.format, img.width, img.height


IMAGE_ONLY = types.GenerateContentConfig(response_modalities=["IMAGE"],
                                         image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"))


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
def test_sync_sdk_generates(server, api_version: str) -> None:
    client = sdk(server.base_url, api_version=api_version)
    resp = client.models.generate_content(model="gemini-3-pro-image", contents=["a fox"], config=IMAGE_ONLY)
    [part] = resp.parts
    assert part.inline_data.mime_type == "image/jpeg" and part.thought_signature
    assert _size(part.inline_data.data) == ("JPEG", 2752, 1536)
    meta = resp.usage_metadata
    assert meta.candidates_tokens_details[0].modality == types.MediaModality.IMAGE
    assert meta.total_token_count == meta.prompt_token_count + meta.candidates_token_count + meta.thoughts_token_count
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP and resp.response_id


async def test_async_sdk_generates_with_text_and_reference(server) -> None:
    client = sdk(server.base_url)
    resp = await client.aio.models.generate_content(
        model="models/gemini-2.5-flash-image",
        contents=[types.Part.from_bytes(data=png_bytes(), mime_type="image/png"), "make it blue"],
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                           image_config=types.ImageConfig(image_size="4K")))
    assert resp.text and resp.text.startswith("Here is the picture")
    image = next(p for p in resp.parts if p.inline_data)
    # 2.5 ignores imageSize; with no ratio the output follows the 64x48 input's shape (4:3)
    assert _size(image.inline_data.data) == ("PNG", 1184, 864)
    assert image.thought_signature is None  # 2.5 has no thought signatures
    details = {d.modality: d.token_count for d in resp.usage_metadata.prompt_tokens_details}
    assert details[types.MediaModality.IMAGE] == 258


def test_sdk_sees_refusals(server) -> None:
    client = sdk(server.base_url)
    resp = client.models.generate_content(model="gemini-3-pro-image", contents=["x [[BLOCK_PROMPT]]"])
    assert resp.candidates is None and resp.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    resp = client.models.generate_content(model="gemini-3.1-flash-image", contents=["x [[NO_IMAGE]]"])
    assert resp.candidates[0].finish_reason == types.FinishReason.NO_IMAGE and resp.parts is None


@pytest.mark.parametrize(("kwargs", "code", "status", "words"), [
    ({"model": "gemini-9-imaginary"}, 404, "NOT_FOUND",
     "models/gemini-9-imaginary is not found for API version v1beta"),
    ({"config": types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="1:4"))}, 400,
     "INVALID_ARGUMENT", "Aspect ratio 1:4 is not supported for this model"),
    ({"config": types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="7:3"))}, 400,
     "INVALID_ARGUMENT", "aspect_ratio must be one of '1:1', '1:4'"),
    ({"config": types.GenerateContentConfig(image_config=types.ImageConfig(image_size="1k"))}, 400,
     "INVALID_ARGUMENT", "Supported values are: 1K, 2K, 4K, 512"),
    ({"config": types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512"))}, 400,
     "INVALID_ARGUMENT", "Image size 512 is not supported for this model"),
    ({"config": types.GenerateContentConfig(candidate_count=2)}, 400, "INVALID_ARGUMENT",
     "Multiple candidates is not enabled"),
    ({"key": "wrong"}, 400, "INVALID_ARGUMENT", "API key not valid"),
    ({"contents": ["[[ERROR:quota:1.5]]"]}, 429, "RESOURCE_EXHAUSTED", "Please retry in 1.5s"),
    ({"contents": ["[[ERROR:unavailable]]"]}, 503, "UNAVAILABLE", "overloaded"),
])
def test_sdk_error_envelopes(server, kwargs, code, status, words) -> None:
    client = sdk(server.base_url, key=kwargs.pop("key", API_KEY))
    call = {"model": "gemini-3-pro-image", "contents": ["a fox"], **kwargs}
    with pytest.raises(errors.APIError) as info:
        client.models.generate_content(**call)
    assert (info.value.code, info.value.status) == (code, status)
    assert words in info.value.message
    if code == 429:
        retry = [d for d in info.value.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
        assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
        assert "retry-after" not in info.value.response.headers
    if status == "INVALID_ARGUMENT" and "API key" in words:
        assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_raw_rest_with_key_param_snake_case_and_field_checks(server) -> None:
    url = f"{server.base_url}/v1beta/models/gemini-3.1-flash-image-preview:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "a tall tower"}]}],
            "generation_config": {"response_modalities": ["IMAGE"],
                                  "image_config": {"aspect_ratio": "1:8", "image_size": "512"}}}
    ok = httpx.post(url, params={"key": API_KEY}, json=body)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("application/json")
    assert ok.headers["x-gemini-service-tier"] == "standard" and "retry-after" not in ok.headers
    answer = ok.json()
    part = answer["candidates"][0]["content"]["parts"][0]
    assert _size(base64.b64decode(part["inlineData"]["data"])) == ("JPEG", 192, 1536)
    assert answer["usageMetadata"]["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 747}]
    assert answer["modelVersion"] == "gemini-3.1-flash-image" and answer["candidates"][0]["index"] == 0

    def error(payload: dict, **params: str) -> dict:
        response = httpx.post(url, params={"key": API_KEY, **params}, json=payload)
        assert response.status_code == 400
        return response.json()["error"]

    assert 'Unknown name "negativePrompt"' in error(
        {"contents": body["contents"], "generationConfig": {"negativePrompt": "blur"}})["message"]
    assert 'Unknown name "aspectRatio"' in error(
        {"contents": body["contents"], "generationConfig": {"aspectRatio": "1:1"}})["message"]
    assert 'Unknown name "personGeneration"' in error(
        {"contents": body["contents"], "generationConfig": {"imageConfig": {"personGeneration": "ALLOW"}}})["message"]
    assert "contents is not specified" in error({"generationConfig": {}})["message"]
    assert "response_modalities[0]" in error(
        {"contents": body["contents"], "generationConfig": {"responseModalities": ["PICTURE"]}})["message"]
    assert "Base64 decoding failed" in error(
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}]})["message"]
    not_json = httpx.post(url, params={"key": API_KEY}, content=b"{oops")
    assert not_json.status_code == 400 and not_json.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert httpx.post(url.replace("/v1beta/", "/v2/"), params={"key": API_KEY}, json=body).status_code == 404


def test_vertex_express_mode_with_the_sdk(server) -> None:
    client = sdk(server.base_url, api_version="v1beta1", vertexai=True)
    resp = client.models.generate_content(model="gemini-3.1-flash-lite-image", contents=["a cat"])
    assert resp.candidates[0].index is None  # Vertex omits it
    assert resp.create_time is not None and resp.usage_metadata.traffic_type == types.TrafficType.ON_DEMAND
    assert _size(resp.parts[0].inline_data.data) == ("JPEG", 1408, 768)


def test_vertex_project_route_needs_a_bearer_token(server) -> None:
    url = (f"{server.base_url}/v1beta1/projects/p/locations/global/publishers/google/models/"
           "gemini-3-pro-image:generateContent")
    body = {"contents": [{"role": "user", "parts": [{"text": "a cat"}]}]}
    assert httpx.post(url, json=body).status_code == 401
    ok = httpx.post(url, json=body, headers={"authorization": "Bearer ya29.token"})
    assert ok.status_code == 200 and "createTime" in ok.json()


def test_provider_in_vertex_express_mode(server, emulator) -> None:
    with Client(config(server.base_url, vertexai=True)) as client:
        res = client.generate("a fox", provider="gemini", model="gemini-3-pro-image", aspect_ratio="1:1")
    assert res.images and res.usage.extra["traffic_type"] == "ON_DEMAND"
    assert emulator.counters.calls == {
        "POST /{version}/publishers/google/models/{model}:generateContent": 1, "total": 1}


def test_provider_vertex_with_a_project_needs_no_key(server) -> None:
    cfg = config(server.base_url, vertexai=True, project="my-project", location="us-central1")
    del cfg["providers"]["gemini"]["api_key"]
    with Client(cfg) as client:
        provider = client.provider("gemini")
        assert provider.api_key is None and provider.api_version == "v1beta1"


def test_emulator_defaults_and_options() -> None:
    emulator = create_emulator()  # no arguments: any key, no latency, documented sizes
    small = create_emulator(image_scale=0.25, default_shape="square", latency=LatencyModel.none())
    with serve(emulator) as a, serve(small) as b:
        for server, want in ((a, (1408, 768)), (b, (256, 256))):
            resp = sdk(server.base_url, key="anything").models.generate_content(
                model="gemini-3-pro-image", contents=["a fox"])
            assert _size(next(p for p in resp.parts if p.inline_data).inline_data.data)[1:] == want
    with pytest.raises(ValueError):
        create_emulator(image_scale=2)


def test_provider_vertex_with_a_project_and_no_google_credentials(server, monkeypatch, tmp_path) -> None:
    # A credentials file that does not exist fails at once (no probing of a metadata server).
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    cfg = config(server.base_url, vertexai=True, project="my-project")
    del cfg["providers"]["gemini"]["api_key"]
    from imagegen import MissingCredentialsError

    with Client(cfg) as client, pytest.raises(MissingCredentialsError, match="application-default login"):
        client.generate("a fox", provider="gemini")
