"""``imagegen record`` and ``imagegen bench`` as the README runs them, against emulators."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .conftest import Cli, write_config

PROMPTS = ('a red fox in the snow\n'
           '{"prompt": "a lighthouse", "size": "2K", "aspect_ratio": "16:9"}\n'
           '# a comment, then an edit of a file next to this one\n'
           '{"prompt": "make the sky purple", "images": ["villa.png"]}\n')


def _villa(directory: Path) -> None:
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 48), "orange").save(buffer, "PNG")
    (directory / "villa.png").write_bytes(buffer.getvalue())


def _requests_in(cassette: Path) -> list[tuple[str, str]]:
    data = yaml.safe_load(cassette.read_text())
    return [(i["request"]["method"], i["request"]["uri"]) for i in data["interactions"]]


def test_record_calls_the_provider_even_when_the_cache_holds_the_answer(cli80: Cli, tmp_path: Path,
                                                                        emulators: dict) -> None:
    write_config(tmp_path, emulators, extra='[cache]\nbackend = "disk"\n')
    (tmp_path / "prompts.txt").write_text("a red fox in the snow\n")
    cli80("generate", "a red fox in the snow", "--provider", "gemini", "--out", "out")  # now in the cache
    for attempt in ("first", "second"):
        proc = cli80("record", "--provider", "gemini", "--prompts", "prompts.txt", "--out", f"mine/{attempt}")
        [cassette] = (tmp_path / "mine" / attempt).glob("*.yaml")
        assert str(cassette.relative_to(tmp_path)) in proc.stdout
        assert any(method == "POST" for method, _ in _requests_in(cassette))


def test_record_names_every_prompt_that_left_no_cassette(cli80: Cli, tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators)
    (tmp_path / "prompts.txt").write_text('a red fox\n{"prompt": "a lighthouse", "model": "gemini-3-pro-image"}\n'
                                          '{"prompt": "a hare", "size": "9K"}\n')
    proc = cli80("record", "--provider", "wireflow", "--prompts", "prompts.txt", "--out", "mine", expect=2)
    assert len(list((tmp_path / "mine").glob("*.yaml"))) == 1
    assert "prompts.txt:2: no cassette:" in proc.stderr and "prompts.txt:3: no cassette:" in proc.stderr
    assert "1 of 3 cassettes written; 2 prompt(s) left none" in proc.stderr
    payload = json.loads(cli80("record", "--provider", "wireflow", "--prompts", "prompts.txt", "--out", "again",
                               "--json", expect=2).stdout)
    assert [f["line"].rsplit(":", 1)[1] for f in payload["failed"]] == ["2", "3"]
    assert all(f["error"] for f in payload["failed"])


def test_the_readme_prompt_file_records_and_replays_on_every_provider(cli80: Cli, tmp_path: Path,
                                                                       emulators: dict) -> None:
    write_config(tmp_path, emulators, extra='[routes.reliable]\nchain = ["gemini", "nb2", "wireflow"]\n')
    (tmp_path / "prompts.txt").write_text(PROMPTS)
    _villa(tmp_path)
    # Earlier Wireflow use leaves its saved workflow ids behind; a cassette must not rely on them.
    cli80("generate", "a red fox in the snow", "--provider", "wireflow", "--out", "out")
    for name in ("gemini", "wireflow", "reliable"):
        proc = cli80("record", "--provider", name, "--prompts", "prompts.txt", "--out", f"mine/{name}")
        assert proc.stdout.count(".yaml") == 3, proc.stdout + proc.stderr
    for cassette in (tmp_path / "mine" / "wireflow").glob("*.yaml"):
        assert any(method == "POST" and uri.split("?")[0].endswith("/workflows")
                   for method, uri in _requests_in(cassette)), cassette
    report = json.loads(cli80("bench", "mine", "--json").stdout)
    assert report["cassettes"] == 9
    assert all(row["failure_rate"] == 0 for row in report["rows"]), report["rows"]
    assert report["sources"]["emulator"] == 9 and "imagegen's emulators" in report["provenance"]


def test_bench_says_where_its_numbers_come_from(cli: Cli) -> None:
    text = cli("bench", "--speed", "400").stdout
    assert "where from:" in text and "recorded against imagegen's emulators" in text
    assert "not measured service latencies" in text


def test_speed_is_described_as_it_behaves(cli80: Cli) -> None:
    text = cli80("bench", "--help").stdout
    assert "1 = the pace of the real service" in " ".join(text.split())
    assert "recorded pace" not in text
