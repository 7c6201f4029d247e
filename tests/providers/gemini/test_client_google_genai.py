"""Google's own documented image examples, run with the real google-genai SDK against the emulator.

Each test is one example of https://ai.google.dev/gemini-api/docs/image-generation, written as a
user would (default transports, no ``api_version``, PIL images in ``contents``), pointed at the
emulator by ``base_url`` only. What it asserts is what the example relies on.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import httpx2
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from imagegen.testing import FaultPlan, LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator


@pytest.fixture(scope="module")
def _served() -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    emulator = create_emulator(latency=LatencyModel.none(), image_scale=0.1)
    with serve(emulator) as server:
        yield emulator, server


@pytest.fixture
def emulator(_served: tuple[GeminiEmulator, LoopbackServer]) -> GeminiEmulator:
    emulator = _served[0]
    emulator.faults = FaultPlan()
    emulator.received.clear()
    return emulator


@pytest.fixture
def client(_served: tuple[GeminiEmulator, LoopbackServer], emulator: GeminiEmulator) -> genai.Client:
    # As the docs do it, plus base_url: google-genai 3.x then calls /v1/..., the default.
    return genai.Client(api_key="test-key", http_options={"base_url": _served[1].base_url})


def picture(width: int, height: int, colour: str = "orange") -> Image.Image:
    return Image.new("RGB", (width, height), colour)


def images_of(response: types.GenerateContentResponse) -> list[Image.Image]:
    found = []
    for part in response.parts or []:
        if part.inline_data is not None and not part.thought:
            found.append(Image.open(io.BytesIO(part.as_image().image_bytes)))
    return found


def test_text_to_image(client: genai.Client, tmp_path) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash-image",
        contents=["Create a picture of a nano banana dish in a fancy restaurant with a Gemini theme"])
    texts = [part.text for part in response.parts if part.text is not None]
    [image] = [part.as_image() for part in response.parts if part.inline_data is not None]
    image.save(str(tmp_path / "generated_image.png"))
    assert texts and Image.open(tmp_path / "generated_image.png").format == "PNG"


def test_edit_with_a_pil_image_keeps_its_shape(client: genai.Client, emulator: GeminiEmulator) -> None:
    # 800x600 in, no aspect ratio: the output takes the model's ratio nearest 4:3.
    for model, size in (("gemini-2.5-flash-image", (118, 86)), ("gemini-3-pro-image-preview", (120, 90))):
        response = client.models.generate_content(
            model=model, contents=["Create a picture of my cat eating a nano-banana", picture(800, 600)])
        [image] = images_of(response)
        assert image.size == size, model  # 1184x864 and 1200x896 at image_scale 0.1
    sent = emulator.received[-1]["contents"][0]["parts"]
    assert [("text" in p, "inline_data" in p or "inlineData" in p) for p in sent] == [(True, False), (False, True)]


@pytest.mark.parametrize("modalities", [["Text", "Image"], ["Image"], ["TEXT", "IMAGE"], ["image"]])
def test_response_modalities_in_any_documented_case(client: genai.Client, modalities: list[str]) -> None:
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents="A photorealistic close-up of a ceramic mug",
        config=types.GenerateContentConfig(response_modalities=modalities))
    assert len(images_of(response)) == 1
    has_text = any(part.text and not part.thought for part in response.parts)
    assert has_text == ("text" in {m.lower() for m in modalities})


def test_bad_modality_is_a_400_with_googles_words(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-2.5-flash-image", contents="x",
                                       config=types.GenerateContentConfig(response_modalities=["Picture"]))
    assert caught.value.code == 400 and "response_modalities[0]" in caught.value.message


def test_multi_reference_with_aspect_ratio_and_size(client: genai.Client, emulator: GeminiEmulator) -> None:
    references = [picture(64, 64, colour) for colour in ("red", "green", "blue", "white", "black")]
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview",
        contents=["An office group photo of these people, they are making funny faces.", *references],
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="5:4", image_size="2K")))
    [image] = images_of(response)
    assert image.size == (230, 186) and image.format == "JPEG"  # 2304x1856 scaled by 0.1
    prompt_images = {d.modality: d.token_count for d in response.usage_metadata.prompt_tokens_details}
    assert prompt_images[types.MediaModality.IMAGE] == 5 * 560  # 3 Pro counts 560 tokens per input image


@pytest.mark.parametrize(("ratio", "size"), [("16:9", (134, 77)), ("9:16", (77, 134)), ("21:9", (154, 67))])
def test_aspect_ratio_on_flash_image(client: genai.Client, ratio: str, size: tuple[int, int]) -> None:
    response = client.models.generate_content(
        model="gemini-2.5-flash-image", contents=["A landscape at dawn"],
        config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio=ratio)))
    assert images_of(response)[0].size == size


def test_chat_sends_thought_signatures_back(client: genai.Client, emulator: GeminiEmulator) -> None:
    chat = client.chats.create(
        model="gemini-3-pro-image-preview",
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                           tools=[{"google_search": {}}]))
    first = chat.send_message("Create a vibrant infographic that explains photosynthesis")
    signatures = [part.thought_signature for part in first.parts if part.thought_signature]
    assert len(signatures) == 2  # on the first part and on the image
    second = chat.send_message(
        "Update this infographic to be in Spanish. Do not change any other elements of the image.",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K")))
    assert images_of(second)[0].size == (275, 154)  # 2752x1536 scaled by 0.1
    history = emulator.received[-1]["contents"]
    assert [turn["role"] for turn in history] == ["user", "model", "user"]
    sent_back = [part.get("thought_signature") or part.get("thoughtSignature") for part in history[1]["parts"]]
    assert [s for s in sent_back if s] and len([s for s in sent_back if s]) == 2


def test_chat_edit_without_ratio_follows_the_previous_image(client: genai.Client) -> None:
    chat = client.chats.create(model="gemini-3-pro-image-preview")
    first = chat.send_message("A tall lighthouse",
                              config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="9:16")))
    second = chat.send_message("Make it night time")
    assert images_of(first)[0].size == images_of(second)[0].size == (77, 138)


def test_thoughts_are_marked_and_left_out_of_the_final_image(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents="Create a diagram of a bicycle",
        config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True)))
    thoughts = [part for part in response.parts if part.thought]
    assert thoughts and any(part.text for part in thoughts)
    assert len(images_of(response)) == 1
    assert response.usage_metadata.thoughts_token_count


def test_generate_content_stream(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(
        model="gemini-3-pro-image-preview", contents="A watercolour fox",
        config=types.GenerateContentConfig(response_modalities=["Text", "Image"])))
    kinds = [["image" if p.inline_data else "text" for p in chunk.parts or []] for chunk in chunks]
    assert kinds == [["text"], ["image"], ["text"]]  # the image in its own chunk
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].parts[0].text == ""
    assert [chunk.usage_metadata is not None for chunk in chunks] == [False, False, True]
    assert chunks[1].parts[0].thought_signature and Image.open(io.BytesIO(chunks[1].parts[0].inline_data.data))


def test_stream_refusal_is_one_chunk(client: genai.Client) -> None:
    chunks = list(client.models.generate_content_stream(model="gemini-3.1-flash-image",
                                                        contents="x [[NO_IMAGE]]"))
    assert len(chunks) == 1 and chunks[0].candidates[0].finish_reason == types.FinishReason.NO_IMAGE


def test_stream_cut_after_the_first_chunk(client: genai.Client, emulator: GeminiEmulator) -> None:
    emulator.faults = FaultPlan.parse("script:drop:after_chunks=1")
    seen = []
    with pytest.raises((httpx.HTTPError, httpx2.HTTPError)):  # the SDK's default transport is httpx2
        for chunk in client.models.generate_content_stream(model="gemini-3-pro-image-preview",
                                                           contents="A watercolour fox"):
            seen.append(chunk)
    assert len(seen) == 1 and seen[0].parts[0].text  # the caption arrived, the image never did
    assert emulator.counters.faults == {"drop": 1}


async def test_aio_client(client: genai.Client) -> None:
    response = await client.aio.models.generate_content(
        model="gemini-3.1-flash-image-preview", contents="A koi pond",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="4:1", image_size="512")))
    assert images_of(response)[0].size == (102, 26)  # 1024x256 scaled by 0.1
    kinds = []
    async for chunk in await client.aio.models.generate_content_stream(
            model="gemini-3.1-flash-image-preview", contents="A koi pond",
            config=types.GenerateContentConfig(response_modalities=["IMAGE"])):
        kinds.append(["image" if p.inline_data else "text" for p in chunk.parts or []])
    assert kinds == [["image"], ["text"]]
    chat = client.aio.chats.create(model="gemini-2.5-flash-image")
    reply = await chat.send_message("A paper crane")
    assert len(images_of(reply)) == 1


def test_models_list_and_get(client: genai.Client) -> None:
    names = [model.name for model in client.models.list()]
    assert "models/gemini-3-pro-image-preview" in names and "models/gemini-2.5-flash-image" in names
    pro = client.models.get(model="gemini-3-pro-image")
    assert pro.display_name == "Nano Banana Pro" and pro.input_token_limit == 65_536
    assert "generateContent" in pro.supported_actions
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model="gemini-9-imaginary")
    assert caught.value.code == 404 and caught.value.status == "NOT_FOUND"


def test_models_list_pages(client: genai.Client) -> None:
    pager = client.models.list(config={"page_size": 3})
    assert len(pager.page) == 3
    assert len(list(pager)) == len(list(client.models.list()))


def test_the_v1beta_path_of_the_rest_examples(_served: tuple[GeminiEmulator, LoopbackServer]) -> None:
    client = genai.Client(api_key="k", http_options={"base_url": _served[1].base_url, "api_version": "v1beta"})
    response = client.models.generate_content(model="gemini-3.1-flash-lite-image", contents="A kite")
    assert images_of(response)[0].size == (141, 77)  # the observed 1408x768, scaled


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1beta/no/such/thing", 404), ("GET", "/", 404), ("DELETE", "/v1beta/models", 405),
    ("GET", "/v1beta/models/gemini-3-pro-image:generateContent", 404)])
def test_unknown_paths_answer_googles_json_envelope(_served, method: str, path: str, status: int) -> None:
    response = httpx.request(method, _served[1].base_url + path, headers={"x-goog-api-key": "k"})
    assert response.status_code == status and response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == status and error["status"] in ("NOT_FOUND", "UNIMPLEMENTED") and error["message"]


def test_count_tokens(client: genai.Client) -> None:
    counted = client.models.count_tokens(model="gemini-2.5-flash-image",
                                         contents=["Make the sky purple", picture(64, 64)])
    assert counted.total_tokens == 5 + 258  # 19 characters of text, one image at 258 tokens
    with pytest.raises(errors.ClientError) as caught:
        client.models.count_tokens(model="gemini-9-imaginary", contents="x")
    assert caught.value.code == 404


def test_google_search_grounding(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview",
        contents="Visualize the current weather forecast for the next 5 days in San Francisco as a chart",
        config=types.GenerateContentConfig(response_modalities=["Text", "Image"],
                                           tools=[{"google_search": {}}]))
    grounding = response.candidates[0].grounding_metadata
    assert grounding.web_search_queries and grounding.search_entry_point.rendered_content
    assert all(chunk.web.uri.startswith("https://") for chunk in grounding.grounding_chunks)
    assert len(images_of(response)) == 1
    plain = client.models.generate_content(model="gemini-3-pro-image-preview", contents="a chart")
    assert plain.candidates[0].grounding_metadata is None


def test_vertex_image_output_options(_served: tuple[GeminiEmulator, LoopbackServer]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "a bowl of fruit"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {
                "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 85}}}}
    url = (_served[1].base_url + "/v1beta1/projects/p/locations/global/publishers/google/models/"
           "gemini-2.5-flash-image:generateContent")
    answer = httpx.post(url, json=body, headers={"Authorization": "Bearer token"}).json()
    [part] = answer["candidates"][0]["content"]["parts"]
    assert part["inlineData"]["mimeType"] == "image/jpeg" and "index" not in answer["candidates"][0]
