"""The README, walked end to end as a new user would: every fenced command and snippet, in order,
in a fresh directory and a fresh data directory, at 80 columns, against the built-in emulators.

How a block runs is decided by its language, or by a directive on the line just above it:

- ``bash``: one shell session for the whole README (``export`` and ``cd`` carry over), each
  command (a line; ``\\`` continues it) must exit 0;
- ``python``: one Python session for the whole README (later snippets use the ``client`` an
  earlier one made), started with the environment the shell commands set up; each snippet must
  run without an exception;
- ``toml``: must parse, and must load as an imagegen config (unknown keys, literal secrets and
  bad values are errors);
- anything else (a plain fence, ``text``): prose, not run.

Directives (an HTML comment, invisible on GitHub) say when a block is not meant to run as is:

- ``<!-- readme: skip REASON -->``: not run; the reason is required (e.g. the set-up commands:
  CI runs ``scripts/test`` itself; ``imagegen demo`` has its own test);
- ``<!-- readme: background -->``: a bash block of long-running commands (``imagegen emulate``):
  each line starts in the background (a trailing ``&`` is dropped), the walk waits until each
  one's ``--port`` accepts connections and stops them all at the end;
- ``<!-- readme: file NAME -->``: the block is a file the README asks the reader to save as NAME
  (``imagegen.toml``): it is written there, and loaded as a config when it is TOML.

Two things differ from a person at a terminal, and only these: the emulators' and Redis's ports
(8701-8704 in the README) are replaced by free ones everywhere in the README's text, so that parallel
test runs do not collide; and the data, cache and config directories are fresh temporary ones.
A snippet that needs real API keys must say so with ``skip``; everything else runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TOUR_PORTS = ("8701", "8702", "8703", "8704")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_DIRECTIVE = re.compile(r"<!--\s*readme:\s*(skip|background|file)\b\s*(.*?)\s*-->")


@dataclass
class Block:
    line: int  # where its code starts in README.md (1-based)
    language: str
    code: str
    directive: str | None = None
    argument: str = ""


def blocks(text: str) -> list[Block]:
    """Every fenced block with a language, with the directive on the line above it (if any)."""
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        directive = _DIRECTIVE.search(before)
        block = Block(line, match.group(1).lower(), match.group(2))
        if directive:
            block.directive, block.argument = directive.group(1), directive.group(2)
        found.append(block)
    return [b for b in found if b.language in ("bash", "sh", "console", "python", "toml") or b.directive]


def commands(code: str) -> list[str]:
    """The commands of a shell block: lines, with ``\\`` continuations joined; blank and comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Session:
    """A long-lived interpreter (bash or python) fed one piece at a time; each piece's outcome
    comes back on stderr after a marker, so the session keeps its state between pieces."""

    MARK = "@@readme:"

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], out: Path) -> None:
        self.out = out
        self._stdout = out.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=self._stdout,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)

    def send(self, text: str, timeout: float) -> tuple[str, str]:
        """Feed ``text`` (ending with the marker's print); the status and what went to stderr."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()
        errors = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError("the session ended:\n" + "".join(errors))
            if line.startswith(self.MARK):
                return line[len(self.MARK):].strip(), "".join(errors)
            errors.append(line)
        raise AssertionError(f"no answer within {timeout} s:\n" + "".join(errors))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._stdout.close()


_PYTHON_SESSION = r"""
import json, sys, traceback
namespace = {"__name__": "__main__"}
for raw in sys.stdin:
    block = json.loads(raw)
    try:
        exec(compile("\n" * (block["line"] - 1) + block["code"], "README.md", "exec"), namespace)
        status = "0"
    except BaseException:
        traceback.print_exc()
        status = "1"
    sys.stdout.flush()
    sys.stderr.write("@@readme:" + status + "\n")
    sys.stderr.flush()
"""


class Tour:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cwd = root / "tour"
        self.cwd.mkdir()
        home = root / "home"
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(("IMAGEGEN_", "GEMINI_", "GOOGLE_", "WIREFLOW_", "NANO_BANANA_", "OPENAI_"))}
        self.env.update({"COLUMNS": "80", "HOME": str(home), "IMAGEGEN_DATA_DIR": str(home / "data"),
                         "XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "config"),
                         "PATH": f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"})
        self.background: list[subprocess.Popen[bytes]] = []
        self.shell = Session(["bash", "--noprofile", "--norc"], self.cwd, self.env, root / "shell.out")
        self.python: Session | None = None

    def where(self, block: Block, extra: str = "") -> str:
        return f"README.md:{block.line} ({block.language}{' ' + block.directive if block.directive else ''}){extra}"

    def run_shell(self, block: Block) -> None:
        for command in commands(block.code):
            status, errors = self.shell.send(f"{command}\necho '{Session.MARK}'$? >&2\n", timeout=300)
            output = self.shell.out.read_text(encoding="utf-8")[-3000:]
            assert status == "0", f"{self.where(block)}: `{command}` exited {status}\n{errors}\n{output}"

    def run_python(self, block: Block) -> None:
        if self.python is None:
            # Started on first use, with the environment the README's shell commands exported.
            dump = shlex.quote(str(self.root / "env"))
            self.shell.send(f"env -0 > {dump}; echo '{Session.MARK}'$? >&2\n", timeout=30)
            env = dict(item.split("=", 1) for item in (self.root / "env").read_text().split("\0") if "=" in item)
            self.python = Session([sys.executable, "-u", "-c", _PYTHON_SESSION], self.cwd, env,
                                  self.root / "python.out")
        status, errors = self.python.send(json.dumps({"line": block.line, "code": block.code}) + "\n", timeout=300)
        assert status == "0", f"{self.where(block)} raised:\n{errors}"

    def check_toml(self, block: Block, name: str | None = None) -> None:
        from imagegen import load_config

        try:
            data = tomllib.loads(block.code)
        except tomllib.TOMLDecodeError as exc:
            raise AssertionError(f"{self.where(block)}: not TOML: {exc}") from None
        if "project" in data or "tool" in data:
            return  # a pyproject.toml fragment (a plugin's entry point), not an imagegen config
        path = self.cwd / name if name else self.root / f"readme-{block.line}.toml"
        path.write_text(block.code, encoding="utf-8")
        load_config(path)  # raises ConfigurationError, naming the key, for anything wrong

    def start_background(self, block: Block) -> None:
        for command in commands(block.code):
            command = command.rstrip().removesuffix("&").strip()
            argv = shlex.split(command, comments=True)
            proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            self.background.append(proc)
            port = argv[argv.index("--port") + 1] if "--port" in argv else None
            deadline = time.monotonic() + 60
            while port is not None and time.monotonic() < deadline:
                assert proc.poll() is None, f"{self.where(block)}: `{command}` exited {proc.returncode}"
                try:
                    socket.create_connection(("127.0.0.1", int(port)), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                assert port is None, f"{self.where(block)}: `{command}` never listened on {port}"

    def walk(self, text: str) -> list[str]:
        done = []
        for block in blocks(text):
            started = time.monotonic()
            if block.directive == "skip":
                assert block.argument, f"{self.where(block)}: a skipped block says why"
                continue
            if block.directive == "background":
                self.start_background(block)
            elif block.directive == "file":
                (self.cwd / block.argument).write_text(block.code, encoding="utf-8")
                if block.language == "toml":
                    self.check_toml(block, block.argument)
            elif block.language in ("bash", "sh", "console"):
                self.run_shell(block)
            elif block.language == "python":
                self.run_python(block)
            elif block.language == "toml":
                self.check_toml(block)
            done.append(f"{self.where(block)} {time.monotonic() - started:.1f}s")
        return done

    def close(self) -> None:
        for session in (self.shell, self.python):
            if session is not None:
                session.close()
        for proc in self.background:
            proc.terminate()
        for proc in self.background:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def tour(tmp_path: Path) -> Iterator[Tour]:
    walk = Tour(tmp_path)
    try:
        yield walk
    finally:
        walk.close()


def readme_text() -> str:
    """The README with the tour's emulator ports replaced by free ones (the only edit)."""
    text = README.read_text(encoding="utf-8")
    for port in TOUR_PORTS:
        text = text.replace(port, str(_free_port()))
    return text


def test_every_block_is_runnable_or_says_why_not() -> None:
    found = blocks(README.read_text(encoding="utf-8"))
    assert sum(b.language == "bash" and b.directive is None for b in found) >= 4
    assert sum(b.language == "python" and b.directive is None for b in found) >= 4
    for block in found:
        assert block.directive != "skip" or block.argument, f"README.md:{block.line}: skip needs a reason"


@pytest.mark.timeout(900)
def test_the_readme_tour_runs_end_to_end(tour: Tour) -> None:
    walked = tour.walk(readme_text())
    print("\n".join(walked))
    assert len(walked) >= 15, walked
    # What the tour promised is on disk: the CLI's file names and the snippets' images.
    for name in ("villa.png", "out/fox.png", "out/fox-blue.png"):
        assert (tour.cwd / name).stat().st_size > 0, name
    assert (tour.cwd / "out" / "fox.png").read_bytes()[:4] == b"\x89PNG"
    # The fleet's worker ran every prompt of the file and of the Python snippet.
    lines = [json.loads(line) for line in (tour.cwd / "fleet-shots" / "batch.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(line.get("images") for line in lines), lines
    assert len(list((tour.cwd / "kites" / "images").iterdir())) == 2
    # The tour ran against emulators: their records stayed apart from real ones.
    data = Path(tour.env["IMAGEGEN_DATA_DIR"])
    assert not (data / "ledger.sqlite3").exists() and (data / "emulators" / "ledger.sqlite3").exists()


def test_the_vendor_batch_price_table_is_the_price_books() -> None:
    """The README's per-image table (standard and vendor batch) says what `imagegen providers` says."""
    proc = subprocess.run([sys.executable, "-m", "imagegen", "providers", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    prices = {row["model"]: row["price"] for row in json.loads(proc.stdout)["providers"] if row["provider"] == "gemini"}
    rows = re.findall(r"^\| (`gemini[^|]*) \| ([\d.]+) \| ([\d.]+) \|$", README.read_text(encoding="utf-8"), re.M)
    assert len(rows) >= 3, rows
    for models, standard, batch in rows:
        for model in re.findall(r"`([^`]+)`", models):
            per_image = prices[model]["per_image_usd"]
            usd = per_image.get("1K", per_image.get("*"))
            assert (usd, usd * prices[model]["batch_discount"]) == pytest.approx((float(standard), float(batch))), model


def test_every_benchmark_is_in_the_readme_with_options_it_takes() -> None:
    """The README lists every script in benchmarks/, each with options its parser declares."""
    root = README.parent
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"`python (?:-m benchmarks\.(\w+)|benchmarks/(\w+)\.py)([^`]*)`", text)
    listed = {module or script: options for module, script, options in found}
    scripts = {p.stem for p in (root / "benchmarks").glob("*.py") if not p.stem.startswith("_")}
    assert scripts <= set(listed), f"not in the README: {sorted(scripts - set(listed))}"
    for name, options in listed.items():
        source = (root / "benchmarks" / f"{name}.py").read_text(encoding="utf-8")
        for flag in re.findall(r"(--[\w-]+)", options):
            assert f'"{flag}"' in source, f"README: benchmarks.{name} has no {flag}"


def test_the_set_up_section_names_what_the_test_command_installs() -> None:
    """Every system package scripts/test installs (when root) is named where the README sets up."""
    script = (README.parent / "scripts" / "test").read_text(encoding="utf-8")
    packages = set(re.findall(r"apt-get install -y -qq ([\w-]+)", script))
    assert packages, "scripts/test installs nothing with apt-get any more: update this test"
    text = README.read_text(encoding="utf-8")
    set_up = text[text.index("## Set-up"):text.index("## A short tour")]
    for package in packages:
        assert package in set_up, f"README set-up does not say the test command needs {package}"
