"""Masked edits and streaming through the CLI, against the emulator."""

from __future__ import annotations

import json

import pytest

from imagegen.cli import main

from .conftest import API_KEY, mask, png


def write_config(tmp_path, server) -> str:
    path = tmp_path / "imagegen.toml"
    path.write_text(f'[providers.openai]\nbase_url = "{server.base_url}"\napi_key = "env:OPENAI_TEST_KEY"\n'
                    '[jobs]\nbackend = "memory"\n[cache]\nbackend = "off"\n')
    return str(path)


def run(capsys, *args: str) -> tuple[int, list[dict]]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return code, lines


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_TEST_KEY", API_KEY)


def test_edit_with_a_mask(tmp_path, capsys, emulator_and_server):
    emulator, server = emulator_and_server
    (tmp_path / "cat.png").write_bytes(png())
    (tmp_path / "mask.png").write_bytes(mask())
    code, [payload] = run(capsys, "edit", "a hat on the cat", "--image", str(tmp_path / "cat.png"), "--mask",
                          str(tmp_path / "mask.png"), "--provider", "openai", "--json", "--out", str(tmp_path / "out"),
                          "--config", write_config(tmp_path, server))
    assert code == 0 and payload["provider"] == "openai" and payload["cost"]["estimated"] is False
    assert [f[0] for f in emulator.received[-1]["files"]] == ["image", "mask"]


def test_stream_writes_previews_then_the_result(tmp_path, capsys, emulator_and_server):
    _, server = emulator_and_server
    (tmp_path / "cat.png").write_bytes(png())
    (tmp_path / "mask.png").write_bytes(mask())
    out = tmp_path / "out"
    code, lines = run(capsys, "stream", "a hat on the cat", "--image", str(tmp_path / "cat.png"), "--mask",
                      str(tmp_path / "mask.png"), "--partial-images", "2", "--provider", "openai", "--json",
                      "--out", str(out), "--config", write_config(tmp_path, server))
    assert code == 0 and [line["partial"]["index"] for line in lines[:2]] == [0, 1]
    assert (out / "partial-0.png").exists() and lines[2]["provider"] == "openai" and len(lines) == 3


def test_stream_refuses_a_bad_mask_with_exit_code_2(tmp_path, capsys, emulator_and_server):
    emulator, server = emulator_and_server
    (tmp_path / "cat.png").write_bytes(png())
    code, [payload] = run(capsys, "stream", "x", "--image", str(tmp_path / "cat.png"), "--mask",
                          str(tmp_path / "cat.png"), "--provider", "openai", "--json",
                          "--config", write_config(tmp_path, server))
    assert code == 2 and payload["error"]["type"] == "InvalidImageError"
    assert emulator.counters.calls.get("total", 0) == 0
