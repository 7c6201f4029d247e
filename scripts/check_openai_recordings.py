"""Replay every shared real OpenAI recording through the real provider and check what it makes of it.

    python scripts/check_openai_recordings.py [../shared/recordings/openai]

Not a test (tests never depend on ../shared): a check to run and report. For each recording the
recorded answer is served to ``imagegen.Client`` by an httpx mock transport (DALL-E result URLs
answer with the recorded download), the same request is made through the ``openai`` provider, and:

- success: every image byte-exact (the recording's base64, or its downloaded PNG), its width and
  height (read from the bytes) equal to the echoed ``size`` (or, without one, the requested size),
  ``revised_prompt`` kept, and the cost equal to the spec's formula computed here by hand from
  ``usage`` (or the per-image price when there is no usage);
- error: the typed error the spec's catalogue calls for.

Prints one line per recording and exits 1 on any mismatch.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from PIL import Image as PILImage

from imagegen import AuthenticationError, Client, ImageGenError, InvalidImageError
from imagegen._http import DownloadPolicy

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "recordings" / "openai"
EXPECTED_ERRORS = {401: AuthenticationError, 400: InvalidImageError}
#: USD per 1M tokens from the spec's section 11.1, typed here independently of models.toml.
RATES = {"gpt-image-1": (5.0, 10.0, 40.0, 0.0), "gpt-image-1.5": (5.0, 8.0, 32.0, 10.0),
         "gpt-image-2": (5.0, 8.0, 30.0, 0.0)}
NOTES: dict[str, list[str]] = {}
DALLE = {("dall-e-3", "standard", "1024x1024"): 0.04, ("dall-e-3", "hd", "1024x1792"): 0.12,
         ("dall-e-2", "standard", "256x256"): 0.016}


def expected_cost(model: str, usage: dict[str, Any] | None, quality: str, size: str, n: int) -> float:
    if usage is None:
        return round(DALLE[(model, quality, size)] * n, 9)
    text_in, image_in, image_out, text_out = RATES[model]
    details_in = usage["input_tokens_details"]
    details_out = usage.get("output_tokens_details") or {"image_tokens": usage["output_tokens"], "text_tokens": 0}
    return round((details_in["text_tokens"] * text_in + details_in["image_tokens"] * image_in
                  + details_out["image_tokens"] * image_out + details_out["text_tokens"] * text_out) / 1e6, 9)


def transport(record: dict[str, Any]) -> httpx.MockTransport:
    response = record["response"]
    download = record.get("image_download")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and download is not None:
            return httpx.Response(200, content=base64.b64decode(download["response"]["body_base64"]),
                                  headers={"content-type": "image/png"})
        if request.method == "GET":  # a 2023-24 url answer whose download was not recorded: a stand-in
            params = record["request"]["params"]
            size = (params if isinstance(params, dict) else dict(params)).get("size", "1024x1024")
            width, height = (int(v) for v in size.split("x"))
            buffer = io.BytesIO()
            PILImage.new("RGB", (width, height), (9, 9, 9)).save(buffer, "PNG")
            return httpx.Response(200, content=buffer.getvalue(), headers={"content-type": "image/png"})
        headers = {"content-type": "application/json"}
        return httpx.Response(response["status"], content=json.dumps(response["body"]).encode(), headers=headers)

    return httpx.MockTransport(handler)


def request_of(record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    sent = record["request"]
    params = sent["params"] if isinstance(sent["params"], dict) else dict(sent["params"])
    model = params.get("model", "dall-e-2")
    fields: dict[str, Any] = {"prompt": params.get("prompt", "a variation"), "provider": f"openai/{model}",
                              "n": int(params.get("n", 1)), "cache": False}
    options = {k: params[k] for k in ("quality", "background", "moderation", "output_compression") if k in params}
    if params.get("size"):
        fields["size"] = params["size"]
    if params.get("output_format"):
        fields["output_format"] = params["output_format"]
    fields["options"] = options
    if "/edits" in sent["url"] or "/variations" in sent["url"]:
        images = [f for f in sent.get("files", []) if f["field"] != "mask"]
        if isinstance(sent["params"], dict):
            images = [{"data_base64": i["image_url"].partition(",")[2]} for i in params.get("images", [])]
        fields["images"] = [_input(f) for f in images] or [_placeholder()]
        masks = [f for f in sent.get("files", []) if f["field"] == "mask"]
        if masks:
            fields["mask"] = _input(masks[0])
        return "edit", fields
    return "generate", fields


def _input(part: dict[str, Any]) -> bytes:
    data = part.get("data_base64")
    if data and data.startswith(("iVBOR", "/9j/", "UklG")) and not data.startswith("UklGRiCrAQBXQVZF"):
        return base64.b64decode(data)
    return _placeholder()  # over 300 kB in the recording, or not an image (the WAV upload)


def _placeholder() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), (0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def check(path: Path) -> list[str]:
    """Problems found with one recording (empty: all checks passed)."""
    record = json.loads(path.read_text())
    operation, fields = request_of(record)
    body = record["response"]["body"]
    config = {"providers": {"openai": {"api_key": "sk-check"}}, "jobs": {"backend": "memory"},
              "cache": {"backend": "off"}, "retry": {"max_attempts": 1}}
    problems: list[str] = []
    with Client(config, transports={"openai": transport(record)}) as client:
        provider = client.provider("openai")
        provider.today = lambda: dt.date(2023, 1, 1)  # before every shutdown: old models may be called
        blob_host = frozenset({"oaidalleapiprodscus.blob.core.windows.net"})
        provider.download_policy = lambda: DownloadPolicy(allow_hosts=blob_host)
        try:
            if operation == "edit":
                prompt = fields.pop("prompt")
                result = client.edit(prompt, **fields)
            else:
                result = client.generate(**fields)
        except ImageGenError as exc:
            wanted = EXPECTED_ERRORS.get(record["response"]["status"])
            if record["response"]["status"] < 300 or wanted is None or not isinstance(exc, wanted):
                problems.append(f"unexpected {type(exc).__name__}: {exc}")
            return problems
    if record["response"]["status"] >= 300:
        return [f"an error answer ({record['response']['status']}) gave a result"]
    sanitized = "sanitized" in path.name
    notes: list[str] = []
    for index, (image, item) in enumerate(zip(result.images, body["data"], strict=True)):
        want = base64.b64decode(item["b64_json"]) if "b64_json" in item else base64.b64decode(
            record["image_download"]["response"]["body_base64"]) if record.get("image_download") else None
        if want is None:
            notes.append("no download recorded: bytes not checked (a same-size stand-in was served)")
        elif image.data != want:
            problems.append(f"image {index} differs from the recording")
        size = body.get("size") or fields.get("size")
        if size and not sanitized and f"{image.width}x{image.height}" != size:
            problems.append(f"image {index} is {image.width}x{image.height}, expected {size}")
        kept = (result.metadata.get("revised_prompts") or [None] * len(body["data"]))[index]
        if item.get("revised_prompt") and kept != item["revised_prompt"]:
            problems.append("revised_prompt lost")
    model = fields["provider"].split("/", 1)[1]
    quality = body.get("quality") or fields["options"].get("quality") or "standard"
    size = body.get("size") or fields.get("size") or "1024x1024"
    cost = expected_cost(model, body.get("usage"), quality, size, len(body["data"]))
    if result.cost.usd != cost:
        problems.append(f"cost {result.cost.usd} != {cost}")
    NOTES[path.name] = sorted(set(notes))
    return problems


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else DEFAULT_DIR
    failures = 0
    with tempfile.TemporaryDirectory() as home:
        import os

        os.environ["IMAGEGEN_DATA_DIR"] = home  # never touch the user's job store or ledger
        for path in sorted(directory.glob("*.json")):
            problems = check(path)
            failures += bool(problems)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            said = "; ".join([*problems, *NOTES.get(path.name, [])])
            print(f"{'ok  ' if not problems else 'FAIL'} {path.name} ({digest})" + (f": {said}" if said else ""))
    print(f"{failures} of {len(list(directory.glob('*.json')))} recordings failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
