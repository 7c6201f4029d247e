"""Reading what the Images API answers: pure, no I/O.

``parse_images(body)`` reads an ``ImagesResponse`` of any year: 2023-24 DALL-E answers with
``url`` and ``revised_prompt`` and no ``usage``; 2025 GPT answers with ``created``/``data``/
``usage`` only; mid-2025 on, the echo fields ``background``, ``output_format``, ``quality``,
``size`` (``size`` may be any ``WxH``); 2026 ``usage.output_tokens_details`` with text tokens.
Unknown fields and enum values are ignored, never rejected: the API adds fields and values without notice. ``read_sse``
reads a stream (section 8). Anything malformed raises ``ValueError``/``KeyError``/``TypeError``,
which the provider's one translator turns into ``InvalidResponseError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from imagegen import Usage
from imagegen.provider import decode_base64

__all__ = ["Item", "Parsed", "SseDecoder", "SseEvent", "parse_images", "read_sse", "usage_of"]


@dataclass
class Item:
    """One ``data[i]``: decoded bytes (``b64_json``) or a ``url`` to download, and ``revised_prompt``."""

    data: bytes | None = None
    url: str | None = None
    revised_prompt: str | None = None


@dataclass
class Parsed:
    created: int | None
    items: list[Item]
    usage: dict[str, Any] | None
    #: The echo fields, when the answer has them (mid-2025 on): background, output_format, quality, size.
    echo: dict[str, str] = field(default_factory=dict)


_ECHO = ("background", "output_format", "quality", "size")


def parse_images(body: bytes | str | dict[str, Any]) -> Parsed:
    data = json.loads(body) if isinstance(body, (bytes, str)) else body
    if not isinstance(data, dict):
        raise TypeError("the answer is not a JSON object")
    if "data" not in data:  # not an Images answer at all (an empty list is one: no image)
        raise KeyError("the answer has no data")
    raw_items = data["data"] or []
    if not isinstance(raw_items, list):
        raise TypeError("data is not a list")
    items = []
    for raw in raw_items:
        if not isinstance(raw, dict):
            raise TypeError("an item of data is not an object")
        item = Item(revised_prompt=raw.get("revised_prompt") if isinstance(raw.get("revised_prompt"), str) else None)
        if raw.get("b64_json") is not None:
            item.data = decode_base64(raw["b64_json"])
        elif isinstance(raw.get("url"), str) and raw["url"]:
            item.url = raw["url"]
        else:
            raise KeyError("an item of data has neither b64_json nor url")
        items.append(item)
    usage = data.get("usage")
    created = data.get("created")
    echo = {key: data[key] for key in _ECHO if isinstance(data.get(key), str)}
    return Parsed(created=created if isinstance(created, int) else None, items=items,
                  usage=usage if isinstance(usage, dict) else None, echo=echo)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_of(raw: dict[str, Any] | None) -> Usage:
    """imagegen's ``Usage``: ``image_tokens``/``text_tokens`` are the OUTPUT split; input split in ``extra``.

    Without ``output_tokens_details`` (gpt-image-1 until 2026-04), all output tokens are image tokens.
    """
    if raw is None:
        return Usage()
    found_in, found_out = raw.get("input_tokens_details"), raw.get("output_tokens_details")
    details_in: dict[str, Any] = found_in if isinstance(found_in, dict) else {}
    details_out: dict[str, Any] | None = found_out if isinstance(found_out, dict) else None
    output = _int(raw.get("output_tokens"))
    image_out = _int(details_out.get("image_tokens")) if details_out is not None else output
    text_out = _int(details_out.get("text_tokens")) if details_out is not None else 0
    extra = {"input_text_tokens": _int(details_in.get("text_tokens")),
             "input_image_tokens": _int(details_in.get("image_tokens")),
             "total_tokens": _int(raw.get("total_tokens"))}
    return Usage(input_tokens=_int(raw.get("input_tokens")), output_tokens=output, image_tokens=image_out,
                 text_tokens=text_out, extra=extra)


@dataclass
class SseEvent:
    """One server-sent event: its ``event:`` name (or the JSON's ``type``) and its JSON data."""

    type: str
    data: dict[str, Any]


class SseDecoder:
    """Incremental SSE reader: feed it lines, it returns each event as it completes."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._chunks: list[str] = []
        self.done = False

    def line(self, line: str) -> SseEvent | None:
        line = line.rstrip("\r")
        if line.startswith(":"):
            return None
        if line:
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                self._name = value
            elif key == "data":
                self._chunks.append(value)
            return None
        if not self._chunks:
            self._name = None
            return None
        text, name = "\n".join(self._chunks), self._name
        self._name, self._chunks = None, []
        if text.strip() == "[DONE]":
            self.done = True
            return None
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError("a stream event's data is not a JSON object")
        return SseEvent(type=str(data.get("type") or name or "message"), data=data)


def read_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from SSE lines (``event: <type>`` / ``data: <json>`` / blank line); ``[DONE]`` ends it."""
    decoder = SseDecoder()
    for line in (*lines, ""):
        event = decoder.line(line)
        if event is not None:
            yield event
        if decoder.done:
            return
