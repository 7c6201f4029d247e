"""Replay every shared real Gemini recording through the real provider and check what it makes of it.

    python scripts/check_gemini_recordings.py [../shared/recordings/gemini]

Not a test (tests never depend on ../shared): a check to run and report. For each recording the
recorded answer is served to ``imagegen.Client`` by an httpx mock transport, a request for the
recorded model is made through the ``gemini`` provider (the Gemini API, or Vertex AI in express
mode for the Vertex recordings), and:

- success: every image byte-exact against the answer's non-thought ``inlineData`` parts, in order;
  width and height read from the bytes; the answer's text kept; the cost equal to the published
  rates (typed here, independently of models.toml) applied to ``usageMetadata``: prompt tokens at
  the input rate, IMAGE candidate tokens at the image rate, the rest of the candidate tokens and
  the thinking tokens at the text rate;
- an answer without an image: ``NoImageReturnedError``; an error status (served to a request for a
  model imagegen knows, since an unknown model is refused before sending): a ``ProviderError``
  with that status.

Prints one line per recording and exits 1 on any mismatch.
"""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

from imagegen import Client, ImageGenError, NoImageReturnedError, ProviderError

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "recordings" / "gemini"
#: USD per 1M tokens (input, text and thinking output, image output): the Gemini API price table of
#: 2026 (ai.google.dev/gemini-api/docs/pricing; pydantic/genai-prices google.yml).
RATES = {"gemini-2.5-flash-image": (0.30, 2.50, 30.0), "gemini-3-pro-image-preview": (2.0, 12.0, 120.0),
         "gemini-3-pro-image": (2.0, 12.0, 120.0), "gemini-3.1-flash-lite-image": (0.25, 1.50, 30.0)}


def expected_cost(model: str, usage: dict[str, Any]) -> float:
    text_in, text_out, image_out = RATES[model]
    image = sum(d["tokenCount"] for d in usage.get("candidatesTokensDetails", []) if d["modality"] == "IMAGE")
    rest = usage.get("candidatesTokenCount", 0) - image + usage.get("thoughtsTokenCount", 0)
    return round(float(usage.get("promptTokenCount", 0) * text_in + image * image_out + rest * text_out) / 1e6, 9)


def transport(record: dict[str, Any]) -> httpx.MockTransport:
    response = record["response"]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(response["status"]["code"], content=json.dumps(response["body"]).encode(),
                              headers={"content-type": "application/json"})

    return httpx.MockTransport(handler)


def config_of(record: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {"plugin": "gemini", "api_key": "recorded-answer"}
    if "aiplatform" in record["request"]["uri"]:
        settings["vertexai"] = True
    return {"providers": {"gemini": settings}, "default": "gemini", "cache": {"backend": "off"},
            "jobs": {"backend": "memory"}, "ledger": {"backend": "memory"}}


def recorded_images(body: dict[str, Any]) -> list[bytes]:
    parts = [p for c in body.get("candidates", []) for p in (c.get("content") or {}).get("parts", [])]
    return [base64.b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p and not p.get("thought")]


def check(path: Path) -> list[str]:
    record = json.loads(path.read_text())
    model = record["request"]["uri"].rsplit("/", 1)[-1].split(":")[0]
    body = record["response"]["body"]
    status = record["response"]["status"]["code"]
    problems: list[str] = []
    with Client(config_of(record), transports={"gemini": transport(record)}) as client:
        if status >= 400:  # the recorded error answer, to a request for a model imagegen knows
            model = "gemini-2.5-flash-image"
        try:
            result = client.generate("a recorded request", provider="gemini", model=model)
        except ImageGenError as exc:
            if status >= 400:
                ok = isinstance(exc, ProviderError) and exc.status_code == status
            else:
                ok = isinstance(exc, NoImageReturnedError) and not recorded_images(body)
            return [] if ok else [f"raised {type(exc).__name__}: {exc}"]
    if status >= 400:
        return [f"HTTP {status} answered, but a result came back"]
    images = recorded_images(body)
    got = [image.data for image in result.images]
    if got != images:
        problems.append(f"{len(got)} image(s), {len(images)} recorded, or bytes differ")
    for image in result.images:
        with PILImage.open(io.BytesIO(image.data)) as decoded:
            if (image.width, image.height) != decoded.size:
                problems.append(f"size {image.width}x{image.height}, the bytes say {decoded.size}")
    want = expected_cost(model, body["usageMetadata"])
    if result.cost.usd is None or abs(result.cost.usd - want) > 1e-9:
        problems.append(f"cost {result.cost.usd} != {want} from usageMetadata")
    parts = [p for c in body["candidates"] for p in c["content"]["parts"]]
    texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
    if [t for t in result.text if t.strip()] != [t for t in texts if t.strip()]:
        problems.append(f"answer text {result.text!r} is not the recorded {texts!r}")
    return problems


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    failed = 0
    files = sorted(folder.glob("*.json"))
    for path in files:
        problems = check(path)
        failed += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {path.name}" + "".join(f"\n     {p}" for p in problems))
    print(f"{failed} of {len(files)} recordings failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
