"""Edit sessions: multi-turn edits on Gemini with every thought signature sent back, resumable
from another process; the reference-image approximation elsewhere."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegen import Client, InvalidRequestError, JobNotFoundError, NoImageReturnedError, Session
from imagegen.testing import LatencyModel, LoopbackServer, serve
from imagegen_gemini.emulator import GeminiEmulator, create_emulator

from .conftest import API_KEY, png_bytes

MODEL = "gemini-3-pro-image"


@pytest.fixture
def started() -> Iterator[tuple[GeminiEmulator, LoopbackServer]]:
    # Signatures of 200 KB: big enough to show they travel through the job store unharmed.
    emulator = create_emulator(latency=LatencyModel.none(), api_keys={API_KEY}, image_scale=0.05,
                               signature_bytes=200_000)
    with serve(emulator) as server:
        yield emulator, server


def _config(server: LoopbackServer, tmp_path: Path) -> dict[str, Any]:
    return {"providers": {"gemini": {"base_url": server.base_url, "api_key": API_KEY, "model": MODEL}},
            "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")},
            "cache": {"backend": "disk", "path": str(tmp_path / "cache")},
            "ledger": {"backend": "sqlite", "path": str(tmp_path / "ledger.sqlite3")}, "retry": {"max_attempts": 1}}


def _signatures(content: dict[str, Any]) -> list[str]:
    return [part["thoughtSignature"] for part in content["parts"] if "thoughtSignature" in part]


def test_three_turns_send_every_signature_back_across_a_restart(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        assert isinstance(session, Session) and session.mode == "conversation"
        first = session.generate("a cottage in a meadow")
        first_model = emulator.received[-1]
        second = session.edit("now make the roof blue")
        sent = emulator.received[-1]["contents"]
        session_id = session.id
    # What Gemini answered in turn 1 came back in turn 2, byte for byte: text part and image part.
    assert [c["role"] for c in sent] == ["user", "model", "user"]
    assert _signatures(sent[1]) == first.metadata["thought_signatures"] and len(_signatures(sent[1])) == 2
    assert all(len(s) > 200_000 * 0.9 for s in _signatures(sent[1]))
    assert base64.b64decode(sent[1]["parts"][-1]["inlineData"]["data"]) == first.images[0].data
    assert sent[0] == first_model["contents"][0]

    with Client(_config(server, tmp_path)) as client:  # another process, later
        session = client.session(id=session_id)
        assert [t.prompt for t in session.turns] == ["a cottage in a meadow", "now make the roof blue"]
        third = session.edit("now add snow")
        sent = emulator.received[-1]["contents"]
        assert [c["role"] for c in sent] == ["user", "model", "user", "model", "user"]
        assert _signatures(sent[1]) == first.metadata["thought_signatures"]
        assert _signatures(sent[3]) == second.metadata["thought_signatures"]
        assert sent[4]["parts"] == [{"text": "now add snow"}]
        assert third.metadata["finish_reason"] == "STOP" and len(third.images) == 1
        assert [t.status for t in session.turns] == ["succeeded"] * 3
        assert session.cost.usd == pytest.approx(first.cost.usd + second.cost.usd + third.cost.usd)
        assert session.result(0).images[0].data == first.images[0].data
        assert client.status(session_id).status == "succeeded"
        ledger = {e.job_id for e in client.ledger.entries()}
        assert ledger == {t.job_id for t in session.turns}
    assert emulator.counters.calls["total"] == 3


def test_a_lost_or_altered_signature_is_answered_as_the_spec_says(started) -> None:
    emulator, server = started
    url = f"{server.base_url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": API_KEY}
    turn = {"contents": [{"role": "user", "parts": [{"text": "a cottage"}]}]}
    answer = httpx.post(url, json=turn, headers=headers).json()
    model = answer["candidates"][0]["content"]
    follow = {"role": "user", "parts": [{"text": "now make it blue"}]}
    good = httpx.post(url, json={"contents": [*turn["contents"], model, follow]}, headers=headers).json()
    assert good["candidates"][0]["finishReason"] == "STOP"
    for broken in (_drop_signature(model, 1), _alter_signature(model, 0), _swap_signatures(model)):
        body = httpx.post(url, json={"contents": [*turn["contents"], broken, follow]}, headers=headers).json()
        assert body["candidates"][0]["finishReason"] == "MISSING_THOUGHT_SIGNATURE"
        assert "content" in body["candidates"][0] and "parts" not in body["candidates"][0]["content"]
    emulator.missing_signature = "400"
    refused = httpx.post(url, json={"contents": [*turn["contents"], _drop_signature(model, 1), follow]},
                         headers=headers)
    assert refused.status_code == 400 and "thought_signature" in refused.json()["error"]["message"]


def _drop_signature(content: dict[str, Any], index: int) -> dict[str, Any]:
    parts = [dict(p) for p in content["parts"]]
    parts[index].pop("thoughtSignature")
    return {**content, "parts": parts}


def _alter_signature(content: dict[str, Any], index: int) -> dict[str, Any]:
    parts = [dict(p) for p in content["parts"]]
    raw = bytearray(base64.b64decode(parts[index]["thoughtSignature"]))
    raw[20] ^= 1
    parts[index]["thoughtSignature"] = base64.b64encode(bytes(raw)).decode()
    return {**content, "parts": parts}


def _swap_signatures(content: dict[str, Any]) -> dict[str, Any]:
    parts = [dict(p) for p in content["parts"]]
    parts[0]["thoughtSignature"], parts[1]["thoughtSignature"] = parts[1]["thoughtSignature"], parts[0][
        "thoughtSignature"]
    return {**content, "parts": parts}


def test_the_client_surfaces_a_missing_signature(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        session.generate("a cottage")
        # Simulate a peer that dropped the signatures: rewrite the stored turn without them.
        job = client.jobs.get(session.turns[0].job_id)
        stored = job.result.metadata["conversation"]
        for part in stored[1]["parts"]:
            part.pop("thoughtSignature", None)
        client.jobs.put(job)
        with pytest.raises(NoImageReturnedError, match="MISSING_THOUGHT_SIGNATURE"):
            session.edit("now make it blue")
        assert [t.status for t in session.turns] == ["succeeded", "failed"]
        assert session.turns[1].error["type"] == "NoImageReturnedError"


def test_thought_images_stay_out_of_results_but_go_back_to_the_model(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        first = session.generate("a cottage", options={"include_thoughts": True})
        assert len(first.images) == 1 and first.metadata["thought_parts"] == 2
        session.edit("now make the roof blue")
        history = emulator.received[-1]["contents"][1]["parts"]
        thoughts = [p for p in history if p.get("thought")]
        assert len(thoughts) == 2 and "inlineData" in thoughts[1]  # the interim image, as received


def test_a_failed_turn_leaves_the_conversation_as_it_was(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        session.generate("a cottage")
        with pytest.raises(NoImageReturnedError):
            session.edit("[[NO_IMAGE]] now make it blue")
        session.edit("now make it green")
        contents = emulator.received[-1]["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        assert contents[-1]["parts"][0]["text"] == "now make it green"
        assert [t.status for t in session.turns] == ["succeeded", "failed", "succeeded"]
        with pytest.raises(InvalidRequestError):
            session.result(1)


def test_a_turn_retried_after_a_crash_is_not_paid_twice(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        session.generate("a cottage")
        session.edit("now make it blue")
        # The process died after the call but before the session noted the turn:
        record = client.jobs.get(session.id)
        record.metadata["session"]["turns"].pop()
        client.jobs.put(record)
    with Client(_config(server, tmp_path)) as client:
        session = client.session(id=session.id)
        again = session.edit("now make it blue")
        assert emulator.counters.calls["total"] == 2 and len(again.images) == 1
        assert len(client.ledger.entries()) == 2


def test_new_images_join_a_turn_and_sessions_are_checked(started, tmp_path: Path) -> None:
    emulator, server = started
    with Client(_config(server, tmp_path)) as client:
        session = client.session(provider="gemini")
        session.generate("a cottage")
        session.edit("put this cat on the roof", images=[png_bytes(colour="orange")])
        last = emulator.received[-1]["contents"][-1]["parts"]
        assert last[0] == {"text": "put this cat on the roof"} and "inlineData" in last[1]
        session.edit("now add snow")  # the cat image was stored with its turn and goes back too
        assert emulator.received[-1]["contents"][2]["parts"][1]["inlineData"]["data"] == last[1]["inlineData"]["data"]
        with pytest.raises(InvalidRequestError, match="bound to gemini"):
            session.edit("x", provider="other")
        with pytest.raises(InvalidRequestError, match="n=1"):
            session.edit("x", n=2)
        with pytest.raises(JobNotFoundError):
            client.session(id="gemini:session-nope")


def test_models_without_a_conversation_get_the_previous_image(tmp_path: Path) -> None:
    from imagegen_nanobanana2.emulator import create_emulator as nb2_emulator

    emulator = nb2_emulator(latency=LatencyModel.none(), image_scale=0.05)
    with serve(emulator) as server:
        config = {"providers": {"nanobanana2": {"base_url": server.base_url, "api_key": "nb2_key"}},
                  "jobs": {"backend": "sqlite", "path": str(tmp_path / "jobs.sqlite3")}, "cache": {"backend": "off"}}
        with Client(config) as client:
            session = client.session(provider="nanobanana2")
            assert session.mode == "reference"
            first = session.generate("a cottage")
            session.edit("now make the roof blue")
            sent = emulator.requests[-1]
            assert sent["path"].endswith("/edit")
            [reference] = [v for v in sent["fields"].values() if isinstance(v, dict) and "size" in v]
            assert reference["size"] == len(first.images[0].data)
            assert [t.operation for t in session.turns] == ["generate", "edit"]
