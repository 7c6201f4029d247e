"""The cassette format: vcrpy YAML, secrets filtered, one elapsed time per interaction.

A cassette written by ``imagegen record`` is an ordinary vcrpy cassette with two additions
that older readers ignore:

- each recorded response carries ``elapsed_s``, the seconds between sending the request
  and having read the whole answer, as measured while recording;
- ``metadata.imagegen`` says how to replay it: the requests made, in order, the config they
  were made with (secrets removed, base URLs rewritten to fixed loopback ones), and
  ``time_scale``, the factor by which the recording ran faster than the real service (an
  emulator sped up 50 times records ``time_scale: 0.02``; a real service records 1.0), and
  where and when it was recorded (``source``, ``recorded_at``).

Real-world seconds are ``elapsed_s / time_scale``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import vcr
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ELAPSED_HEADER",
    "FILTERED_HEADERS",
    "FILTERED_QUERY_PARAMETERS",
    "CassetteInfo",
    "fresh_provider_state",
    "read_info",
    "recording_vcr",
    "replay_vcr",
    "write_info",
]

#: Request headers never written to a cassette (auth of every built-in provider, and cookies).
FILTERED_HEADERS = ("authorization", "x-goog-api-key", "x-api-key", "api-key", "proxy-authorization", "cookie")
FILTERED_QUERY_PARAMETERS = ("key", "api_key", "apikey")
#: Replay moves each response's recorded time into this header for the pacing transport.
ELAPSED_HEADER = "x-imagegen-replay-elapsed"
FILTERED = "<FILTERED>"
FORMAT_VERSION = 1


class CassetteInfo(BaseModel):
    """What ``metadata.imagegen`` holds: enough to replay the cassette through a Client."""

    model_config = ConfigDict(extra="ignore")

    version: int = FORMAT_VERSION
    #: Client config used while recording: no api keys, base URLs rewritten for replay.
    config: dict[str, Any] = Field(default_factory=dict)
    #: The requests made, in order (``ImageRequest`` as JSON).
    requests: list[dict[str, Any]] = Field(default_factory=list)
    #: Recorded seconds / real seconds: 1.0 against a real service, < 1 against a sped-up emulator.
    time_scale: float = 1.0
    #: Where it was recorded: "emulator" (imagegen's, so latencies are its latency model's) or "service".
    source: str = "service"
    #: The day it was recorded (ISO date, UTC); None in cassettes older than this field.
    recorded_at: str | None = None
    #: What each request ended with while recording (result or error type, latency, cost).
    outcomes: list[dict[str, Any]] = Field(default_factory=list)
    #: How the requests were made: ``calls`` (generate), ``vendor_batch`` or ``session`` (see ``_kinds``).
    kind: str = "calls"


def _scrub(text: Any, secrets: Iterable[str]) -> Any:
    for secret in secrets:
        if isinstance(text, bytes):
            text = text.replace(secret.encode(), FILTERED.encode())
        elif isinstance(text, str):
            text = text.replace(secret, FILTERED)
    return text


def _secret_scrubbers(secrets: Iterable[str]) -> tuple[Any, Any]:
    """Hooks that replace every secret value in URIs, headers and bodies, both directions."""
    values = sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True)

    def request(req: Any) -> Any:
        req.uri = _scrub(req.uri, values)
        req.body = _scrub(req.body, values)
        for name in list(req.headers):
            req.headers[name] = _scrub(req.headers[name], values)
        return req

    def response(resp: dict[str, Any]) -> dict[str, Any]:
        body = resp.get("body") or {}
        if "string" in body:
            body["string"] = _scrub(body["string"], values)
        for name, items in (resp.get("headers") or {}).items():
            resp["headers"][name] = [_scrub(v, values) for v in items]
        return resp

    return request, response


def recording_vcr(secrets: Iterable[str] = ()) -> vcr.VCR:
    """A vcrpy config that records everything, with auth headers, key parameters and secrets removed."""
    scrub_request, scrub_response = _secret_scrubbers(secrets)
    return vcr.VCR(record_mode="all", filter_headers=list(FILTERED_HEADERS),
                   filter_query_parameters=list(FILTERED_QUERY_PARAMETERS),
                   before_record_request=scrub_request, before_record_response=scrub_response,
                   decode_compressed_response=True)


def _expose_elapsed(time_scale: float) -> Any:
    def hook(response: dict[str, Any]) -> dict[str, Any]:
        # vcrpy runs this on every interaction as the cassette loads (record_mode none
        # records nothing), so it is where a played response learns its recorded time.
        elapsed = response.get("elapsed_s")
        if elapsed is not None:
            headers = response.setdefault("headers", {})
            headers[ELAPSED_HEADER] = [repr(float(elapsed) / time_scale)]
        return response

    return hook


def replay_vcr(time_scale: float = 1.0) -> vcr.VCR:
    """A vcrpy config that only plays back (any unrecorded request fails) and exposes elapsed times."""
    return vcr.VCR(record_mode="none", filter_headers=list(FILTERED_HEADERS),
                   filter_query_parameters=list(FILTERED_QUERY_PARAMETERS),
                   before_record_response=_expose_elapsed(time_scale))


def _load_yaml(path: Path) -> dict[str, Any]:
    from vcr.serializers import yamlserializer

    data: dict[str, Any] = yamlserializer.deserialize(path.read_text(encoding="utf-8"))
    return data


def read_info(path: str | Path) -> CassetteInfo | None:
    """The imagegen metadata of a cassette, or None for a plain vcrpy cassette."""
    data = _load_yaml(Path(path))
    meta = (data.get("metadata") or {}).get("imagegen") if isinstance(data, dict) else None
    return CassetteInfo.model_validate(meta) if meta else None


def interactions(path: str | Path) -> list[dict[str, Any]]:
    """The raw interactions of a cassette (request and response dicts, ``elapsed_s`` included)."""
    data = _load_yaml(Path(path))
    return list(data.get("interactions") or [])


def write_info(path: str | Path, info: CassetteInfo, *, replace_text: Mapping[str, str] | None = None) -> None:
    """Store ``info`` in the cassette at ``path``, then replace text (secrets, recorded hosts) everywhere."""
    from vcr.serializers import yamlserializer

    path = Path(path)
    data = _load_yaml(path)
    data.setdefault("metadata", {})["imagegen"] = info.model_dump(mode="json")
    text = yamlserializer.serialize(data)
    for old, new in (replace_text or {}).items():
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


_STATE_LOCK = threading.Lock()


@contextmanager
def fresh_provider_state() -> Iterator[None]:
    """Providers created inside see an empty data directory of their own.

    A provider may keep state between runs under imagegen's data directory (Wireflow saves the
    ids of the workflows it created). A cassette must not depend on it: recorded with a saved
    workflow id it would lack the ``POST /workflows`` a replay on another machine sends. So
    recording and replaying point ``IMAGEGEN_DATA_DIR`` at a temporary directory while they run
    (one at a time: the environment is the process's). Stores a client opened before this
    block (its ledger) stay where they were.
    """
    with _STATE_LOCK, tempfile.TemporaryDirectory(prefix="imagegen-provider-state-") as scratch:
        before = os.environ.get("IMAGEGEN_DATA_DIR")
        os.environ["IMAGEGEN_DATA_DIR"] = scratch
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("IMAGEGEN_DATA_DIR", None)
            else:
                os.environ["IMAGEGEN_DATA_DIR"] = before
