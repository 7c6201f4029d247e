"""Cold import time and resident memory of ``import imagegen`` (and optional peers).

Each round starts fresh interpreters for every subject, in turn, so machine noise hits all
subjects alike; medians over the rounds are reported, time as a ratio to ``python -c pass``
and peak RSS (``ru_maxrss`` of the interpreter after the import) next to it.
``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set so ``import litellm`` does not fetch its price
map from the internet (``pip install litellm`` to compare with it; it is not a dependency).

    python -m benchmarks.import_time --rounds 15 [--with google.genai,litellm] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "import_time.md"


_RSS = "; import resource, sys; sys.stdout.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))"


def cold_import(statement: str) -> tuple[float, float]:
    """Seconds for a fresh interpreter to run ``statement``, and its peak RSS in MB."""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", statement + _RSS], check=True, capture_output=True, text=True,
                          env=env)
    elapsed = time.perf_counter() - start
    return elapsed, int(proc.stdout.strip() or 0) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--with", dest="others", default="", help="comma-separated modules to compare too")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    args = parser.parse_args(argv)

    subjects = {"python -c pass": "pass", "import imagegen": "import imagegen"}
    for module in filter(None, args.others.split(",")):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(f"skipping {module}: not installed", file=sys.stderr)
            continue
        subjects[f"import {module}"] = f"import {module}"
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    rss: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(args.rounds):
        for name, statement in subjects.items():
            seconds, megabytes = cold_import(statement)
            samples[name].append(seconds)
            rss[name].append(megabytes)

    baseline = statistics.median(samples["python -c pass"])
    heaviest = max(statistics.median(v) for v in samples.values())
    lines = ["| subject | median s | ratio to `python -c pass` | ratio to the slowest | peak RSS MB |",
             "|---|---:|---:|---:|---:|"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median:.3f} | {median / baseline:.2f} | {median / heaviest:.2f} | "
                     f"{statistics.median(rss[name]):.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python -m benchmarks.import_time " + " ".join(argv if argv is not None else sys.argv[1:])
        RESULTS.write_text(f"# Cold import time\n\nCommand: `{command.strip()}` ({args.rounds} rounds, "
                           f"Python {sys.version.split()[0]}, 2 cores)\n\n{table}\n")


if __name__ == "__main__":
    main()
