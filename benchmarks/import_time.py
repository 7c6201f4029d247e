"""Cold start-up: ``import imagegen`` and the ``imagegen`` command, against their references.

Each round starts a fresh interpreter for every subject, in a shuffled order, so machine noise
hits all subjects alike (after one unmeasured run of each, which also writes the .pyc files a
user's install has); medians over the rounds are reported, wall time and CPU time (user +
system: on a busy machine it moves far less than wall time), each as a ratio to the subject's
reference, with the peak RSS of the interpreter next to them:

- the library (``import imagegen``, ``from imagegen import Client``, and ``from imagegen import
  AsyncClient``, the client itself: ``Client`` is a facade that loads it on the first ``Client()``)
  against ``import httpx, pydantic``, the two libraries it is built on (bar: 1.5x);
- the command (``imagegen --help``, ``imagegen --version``, an argument error) against
  ``python -c "import typer"`` (bar: 2.5x; a bare Typer app with rich help is ~2.1x);
- ``imagegen providers --json`` (discovers the plugins) for information, and a first call
  (``Client`` on a loopback config, one ``estimate``: plugins load and the models' validators,
  deferred by ``defer_build``, are built) so what the import no longer pays shows where it went.

``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set so ``import litellm`` does not fetch its price map
from the internet (``pip install litellm`` to compare with it; it is not a dependency).

    python -m benchmarks.import_time --rounds 15 [--with google.genai,litellm] [--baseline DIR] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "import_time.md"
#: The first call's job store and ledger (a loopback config: under ``emulators/``), not the user's.
_DATA_DIR = tempfile.mkdtemp(prefix="imagegen-import-time-")

_RSS = "import resource, sys; sys.stderr.write('\\nrss=' + str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))"
_LIBRARY_BAR, _CLI_BAR = 1.5, 2.5


_FIRST_CALL = ("from imagegen import Client\n"
               "with Client({'providers': {'wireflow': {'api_key': 'k', 'base_url': 'http://127.0.0.1:9'}},"
               " 'cache': {'backend': 'off'}}) as client:\n"
               "    client.estimate('a red fox', provider='wireflow')")


def _python(statement: str, checkout: str | None = None) -> list[str]:
    return [sys.executable, "-c", f"{_from(checkout)}{statement}\n{_RSS}"]


def _from(checkout: str | None) -> str:
    """Code that makes ``imagegen`` and the built-in providers import from another checkout
    (``--baseline``), ahead of this one (a provider must match the core it was written for)."""
    if not checkout:
        return ""
    paths = [checkout, *sorted(str(p) for p in Path(checkout, "providers").iterdir() if p.is_dir())]
    return f"import sys; sys.path[:0] = {paths!r}\n"


def _command(*args: str, checkout: str | None = None) -> list[str]:
    """The ``imagegen`` console script as a user runs it, with the RSS report added at exit."""
    script = Path(sys.executable).with_name("imagegen")
    entry = f"{_from(checkout)}import atexit; atexit.register(lambda: exec({_RSS!r}))\n"
    if script.is_file() or shutil.which("imagegen"):
        code = (entry + "import sys; from imagegen.cli import main; sys.argv[0] = 'imagegen'; main()")
        return [sys.executable, "-c", code, *args]
    raise SystemExit("the imagegen command is not installed (pip install -e .)")


def subjects(others: list[str], baseline: str | None = None) -> dict[str, tuple[list[str], str | None]]:
    """name -> (argv, the reference it is compared with); with ``baseline`` (another checkout's
    root), each imagegen subject again as ``before: ...``, from that checkout, in the same rounds."""
    found: dict[str, tuple[list[str], str | None]] = {
        "python -c pass": (_python("pass"), None),
        "import httpx, pydantic": (_python("import httpx, pydantic"), None),
        "import typer": (_python("import typer"), None),
    }
    for checkout, prefix in [(None, ""), *([(baseline, "before: ")] if baseline else [])]:
        found.update({
            f"{prefix}import imagegen": (_python("import imagegen", checkout), "import httpx, pydantic"),
            f"{prefix}from imagegen import Client": (_python("from imagegen import Client", checkout),
                                                     "import httpx, pydantic"),
            f"{prefix}from imagegen import AsyncClient": (_python("from imagegen import AsyncClient", checkout),
                                                          "import httpx, pydantic"),
            f"{prefix}... + Client() + estimate()": (_python(_FIRST_CALL, checkout), "import httpx, pydantic"),
            f"{prefix}imagegen --help": (_command("--help", checkout=checkout), "import typer"),
            f"{prefix}imagegen --version": (_command("--version", checkout=checkout), "import typer"),
            f"{prefix}imagegen generate (no prompt)": (_command("generate", checkout=checkout), "import typer"),
            f"{prefix}imagegen providers --json": (_command("providers", "--json", checkout=checkout),
                                                   "import typer"),
        })
    for module in others:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"skipping {module}: not installed", file=sys.stderr)
            continue
        found[f"import {module}"] = (_python(f"import {module}"), "import httpx, pydantic")
    return found


def cold_run(argv: list[str]) -> tuple[float, float, float]:
    """Wall seconds for a fresh interpreter to run ``argv``, its CPU seconds (user + system) and
    its peak RSS in MB. CPU time is what a busy machine distorts least: a process waiting for a
    core it shares adds wall time, not CPU time."""
    # Bytecode is written and read as on a user's machine (pip compiles what it installs): with
    # PYTHONDONTWRITEBYTECODE set, imagegen's own modules (an editable install) would be compiled
    # from source on every start while httpx's and pydantic's come from .pyc files.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "80", "IMAGEGEN_DATA_DIR": _DATA_DIR})
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss = proc.stderr.rsplit("rss=", 1)
    if len(rss) != 2:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, cpu, int(rss[1].strip() or 0) / 1024


def measure(table: dict[str, tuple[list[str], str | None]], rounds: int) -> tuple[dict, dict, dict]:
    samples: dict[str, list[float]] = {name: [] for name in table}
    cpu: dict[str, list[float]] = {name: [] for name in table}
    rss: dict[str, list[float]] = {name: [] for name in table}
    names = list(table)
    for name in names:  # warm the file cache and write the .pyc files once, unmeasured
        cold_run(table[name][0])
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            seconds, cpu_seconds, megabytes = cold_run(table[name][0])
            samples[name].append(seconds)
            cpu[name].append(cpu_seconds)
            rss[name].append(megabytes)
    return samples, cpu, rss


def render(table: dict[str, tuple[list[str], str | None]], samples: dict, cpu: dict, rss: dict) -> str:
    """One row per subject: wall and CPU medians, each as a ratio to its reference; the bar is
    judged on both (``<=`` only when both are within it)."""
    wall = {name: statistics.median(values) for name, values in samples.items()}
    used = {name: statistics.median(values) for name, values in cpu.items()}
    lines = ["| subject | wall s | CPU s | reference | x reference (wall) | x reference (CPU) | bar | peak RSS MB |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for name, (_, reference) in table.items():
        ratio = cpu_ratio = bar = ""
        if reference is not None:
            ratio = f"{wall[name] / wall[reference]:.2f}"
            cpu_ratio = f"{used[name] / used[reference]:.2f}"
            limit = _CLI_BAR if reference == "import typer" else _LIBRARY_BAR
            if name.startswith(("import imagegen", "from imagegen", "imagegen --", "imagegen generate")):
                within = max(wall[name] / wall[reference], used[name] / used[reference]) <= limit
                bar = f"{'<=' if within else 'OVER'} {limit}"
        lines.append(f"| `{name}` | {wall[name]:.3f} | {used[name]:.3f} | {f'`{reference}`' if reference else ''} | "
                     f"{ratio} | {cpu_ratio} | {bar} | {statistics.median(rss[name]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--with", dest="others", default="", help="comma-separated modules to compare too")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--label", default="", help="a line saying what was measured (e.g. 'before: <commit>')")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="another checkout (e.g. `git worktree add /tmp/before <commit>`) measured alongside")
    args = parser.parse_args(argv)

    table = subjects([m for m in args.others.split(",") if m], args.baseline)
    samples, cpu, rss = measure(table, args.rounds)
    text = render(table, samples, cpu, rss)
    print(text)
    if args.write:
        command = "python -m benchmarks.import_time " + " ".join(argv if argv is not None else sys.argv[1:])
        load = os.getloadavg()[0]
        RESULTS.write_text(
            f"# Cold start-up: `import imagegen` and the `imagegen` command\n\n"
            f"Command: `{command.strip()}` ({args.rounds} rounds, subjects shuffled in each round; "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load:.1f} when it ended)"
            f"{' - ' + args.label if args.label else ''}\n\n{text}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
