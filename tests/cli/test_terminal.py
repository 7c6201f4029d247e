"""What a person sees at a terminal: whole ids at 80 columns, user text printed as written,
signs of life while a retry or a fallback waits, a clear word on Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from imagegen.testing import LatencyModel, serve

from .conftest import API_KEYS, Cli, whole_on_one_line, write_config

MARKUP_PROMPT = "a fox [/] in [bold]snow[/bold] [cached]"


def test_jobs_show_whole_ids_and_prompts_as_written(cli: Cli, configured: Path) -> None:
    made = [json.loads(cli("generate", prompt, "--provider", name, "--json", "--out", "out").stdout)
            for prompt, name in ((MARKUP_PROMPT, "gemini"), ("a hare", "wireflow"), ("a wolf", "nb2"))]
    listing = cli("jobs").stdout
    for result in made:
        assert any(line.startswith(result["job_id"] + "  succeeded") for line in listing.splitlines()), listing
    assert MARKUP_PROMPT in listing
    for line in listing.splitlines():
        assert len(line) <= max(cli.columns, len(max((r["job_id"] for r in made), key=len)) + 40)


def test_providers_and_cost_show_whole_model_names(cli: Cli, configured: Path) -> None:
    listing = cli("providers").stdout
    for model in ("gemini/gemini-3.1-flash-lite-image", "gemini/gemini-nano-banana-2.1", "wireflow/nano_banana_pro",
                  "nanobanana2/nano-banana-2"):
        assert whole_on_one_line(listing, model), listing
    cli("generate", "a fox", "--provider", "gemini/gemini-3.1-flash-lite-image", "--out", "out")
    spend = cli("cost", "--by", "model").stdout
    assert whole_on_one_line(spend, "gemini/gemini-3.1-flash-lite-image"), spend
    assert "…" not in spend


def test_result_lines_print_user_text_as_written(cli80: Cli, tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators, extra='[cache]\nbackend = "disk"\n')
    first = cli80("generate", MARKUP_PROMPT, "--out", "out")
    again = cli80("generate", MARKUP_PROMPT, "--out", "out")
    assert "(from the cache, at no cost)" not in first.stdout
    assert "(from the cache, at no cost)" in again.stdout and "$0.0000" in again.stdout


def test_a_retry_and_a_fallback_say_what_they_wait_for(cli80: Cli, tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators, extra='[routes.reliable]\nchain = ["gemini", "nb2"]\n')
    started = time.monotonic()
    proc = cli80("generate", "a fox [[ERROR:quota:1]]", "--provider", "reliable", "--out", "out")
    assert time.monotonic() - started >= 2  # two 1 s waits, as the server asked
    lines = proc.stderr.splitlines()
    assert lines.count("gemini: rate limited (429), retrying in 1 s") == 2, proc.stderr
    assert "gemini: rate limited (429), trying nb2" in lines, proc.stderr
    assert "provider nb2" in proc.stdout


def run_on_a_terminal(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run ``imagegen`` with its stderr on a pseudo-terminal (as a person sees it): exit, output."""
    master, slave = pty.openpty()
    env = {**os.environ, **API_KEYS, "COLUMNS": "80", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "imagegen", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=slave, text=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


def test_on_a_terminal_the_wait_is_a_live_status_line(tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators)
    code, text = run_on_a_terminal(["generate", "a fox [[ERROR:quota:2]]", "--out", "o"], tmp_path)
    assert "gemini: rate limited (429), retrying in 2 s" in text or "retrying in 1 s" in text, text
    assert "\r" in text or "\x1b[" in text  # redrawn in place, not one line per tick
    assert code == 3  # three quota answers: the error, after the waits


def test_the_status_line_prints_user_text_as_written(tmp_path: Path, emulators: dict) -> None:
    write_config(tmp_path, emulators)
    code, text = run_on_a_terminal(["generate", "a fox", "--provider", "[/]", "--out", "o"], tmp_path)
    assert code == 2 and "UnknownProviderError" in text and "MarkupError" not in text, text


def test_ctrl_c_in_a_batch_says_how_to_resume(tmp_path: Path) -> None:
    from imagegen_gemini.emulator import create_emulator

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"animal number {i}\n" for i in range(8)), encoding="utf-8")
    with serve(create_emulator(latency=LatencyModel(base=0.4))) as server:
        write_config(tmp_path, {"gemini": server, "wireflow": server, "nanobanana2": server})
        env = {**os.environ, **API_KEYS, "COLUMNS": "80"}
        argv = [sys.executable, "-m", "imagegen", "batch", str(prompts), "--concurrency", "1", "--provider", "gemini",
                "--out", "shots"]
        # Ctrl-C at a terminal reaches a command whose SIGINT is at its default. A suite started in
        # the background of a non-interactive shell inherits SIGINT ignored, and Python then leaves
        # it ignored (as under nohup): a handler here is reset to the default in the child.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        results = tmp_path / "shots" / "batch.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (results.exists() and results.read_text().count("\n") >= 2):
            time.sleep(0.05)
        at_signal = results.read_text().count("\n") if results.exists() else 0
        running = proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (f"{at_signal} lines when interrupted, batch still running: {running}\n"
                                        + out + err)
        assert "interrupted — run the same command again to resume" in err
        done_before = results.read_text().count("\n")
        assert 2 <= done_before < 8
        again = subprocess.run([*argv, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        summary = json.loads(again.stdout)
        assert again.returncode == 0, again.stderr
        assert summary["skipped"] >= done_before and summary["skipped"] + summary["succeeded"] == 8
