"""Cold start-up: ``import imagegen`` and the ``imagegen`` command, against their references.

Each round starts a fresh interpreter for every subject, in a shuffled order, so machine noise
hits all subjects alike (after one unmeasured run of each, which also writes the .pyc files a
user's install has); medians over the rounds are reported, as ratios to ``python -c pass``
and to the subject's reference, with the peak RSS of the interpreter next to them:

- the library (``import imagegen``, ``from imagegen import Client``, which loads every public
  name) against ``import httpx, pydantic``, the two libraries it is built on (bar: 1.5x);
- the command (``imagegen --help``, ``imagegen --version``, an argument error) against
  ``python -c "import typer"`` (bar: 2.5x; a bare Typer app with rich help is ~2.1x);
- ``imagegen providers --json`` (discovers the plugins) for information, and a first call
  (``Client`` on a loopback config, one ``estimate``: plugins load and the models' validators,
  deferred by ``defer_build``, are built) so what the import no longer pays shows where it went.

``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set so ``import litellm`` does not fetch its price map
from the internet (``pip install litellm`` to compare with it; it is not a dependency).

    python -m benchmarks.import_time --rounds 15 [--with google.genai,litellm] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
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


def _python(statement: str) -> list[str]:
    return [sys.executable, "-c", f"{statement}\n{_RSS}"]


def _command(*args: str) -> list[str]:
    """The ``imagegen`` console script as a user runs it, with the RSS report added at exit."""
    script = Path(sys.executable).with_name("imagegen")
    entry = f"import atexit; atexit.register(lambda: exec({_RSS!r}))\n"
    if script.is_file() or shutil.which("imagegen"):
        code = (entry + "import sys; from imagegen.cli import main; sys.argv[0] = 'imagegen'; main()")
        return [sys.executable, "-c", code, *args]
    raise SystemExit("the imagegen command is not installed (pip install -e .)")


def subjects(others: list[str]) -> dict[str, tuple[list[str], str | None]]:
    """name -> (argv, the reference it is compared with)."""
    found: dict[str, tuple[list[str], str | None]] = {
        "python -c pass": (_python("pass"), None),
        "import httpx, pydantic": (_python("import httpx, pydantic"), None),
        "import imagegen": (_python("import imagegen"), "import httpx, pydantic"),
        "from imagegen import Client": (_python("from imagegen import Client"), "import httpx, pydantic"),
        "... + Client() + estimate()": (_python(_FIRST_CALL), "import httpx, pydantic"),
        "import typer": (_python("import typer"), None),
        "imagegen --help": (_command("--help"), "import typer"),
        "imagegen --version": (_command("--version"), "import typer"),
        "imagegen generate (no prompt)": (_command("generate"), "import typer"),
        "imagegen providers --json": (_command("providers", "--json"), "import typer"),
    }
    for module in others:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"skipping {module}: not installed", file=sys.stderr)
            continue
        found[f"import {module}"] = (_python(f"import {module}"), "import httpx, pydantic")
    return found


def cold_run(argv: list[str]) -> tuple[float, float]:
    """Seconds for a fresh interpreter to run ``argv``, and its peak RSS in MB."""
    # Bytecode is written and read as on a user's machine (pip compiles what it installs): with
    # PYTHONDONTWRITEBYTECODE set, imagegen's own modules (an editable install) would be compiled
    # from source on every start while httpx's and pydantic's come from .pyc files.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "80", "IMAGEGEN_DATA_DIR": _DATA_DIR})
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    rss = proc.stderr.rsplit("rss=", 1)
    if len(rss) != 2:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, int(rss[1].strip() or 0) / 1024


def measure(table: dict[str, tuple[list[str], str | None]], rounds: int) -> tuple[dict, dict]:
    samples: dict[str, list[float]] = {name: [] for name in table}
    rss: dict[str, list[float]] = {name: [] for name in table}
    names = list(table)
    for name in names:  # warm the file cache and write the .pyc files once, unmeasured
        cold_run(table[name][0])
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            seconds, megabytes = cold_run(table[name][0])
            samples[name].append(seconds)
            rss[name].append(megabytes)
    return samples, rss


def render(table: dict[str, tuple[list[str], str | None]], samples: dict, rss: dict) -> str:
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians["python -c pass"]
    lines = ["| subject | median s | x `python -c pass` | reference | x reference | bar | peak RSS MB |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for name, (_, reference) in table.items():
        ratio = bar = ""
        if reference is not None:
            ratio = f"{medians[name] / medians[reference]:.2f}"
            limit = _CLI_BAR if reference == "import typer" else _LIBRARY_BAR
            if name.startswith(("import imagegen", "from imagegen", "imagegen --", "imagegen generate")):
                bar = f"{'<=' if medians[name] / medians[reference] <= limit else 'OVER'} {limit}"
        lines.append(f"| `{name}` | {medians[name]:.3f} | {medians[name] / baseline:.2f} | "
                     f"{f'`{reference}`' if reference else ''} | {ratio} | {bar} | "
                     f"{statistics.median(rss[name]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--with", dest="others", default="", help="comma-separated modules to compare too")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--label", default="", help="a line saying what was measured (e.g. 'before: <commit>')")
    args = parser.parse_args(argv)

    table = subjects([m for m in args.others.split(",") if m])
    samples, rss = measure(table, args.rounds)
    text = render(table, samples, rss)
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
