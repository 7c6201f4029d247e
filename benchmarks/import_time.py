"""Cold import time of ``import imagegen`` (and optional peers) as a ratio to ``python -c pass``.

Each round starts fresh interpreters for every subject, in turn, so machine noise hits all
subjects alike; medians over the rounds are reported.

    python -m benchmarks.import_time --rounds 15 [--with google.genai,litellm] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "import_time.md"


def cold_import_seconds(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


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
    for _ in range(args.rounds):
        for name, statement in subjects.items():
            samples[name].append(cold_import_seconds(statement))

    baseline = statistics.median(samples["python -c pass"])
    lines = ["| subject | median s | ratio to `python -c pass` |", "|---|---:|---:|"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median:.3f} | {median / baseline:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = "python -m benchmarks.import_time " + " ".join(argv if argv is not None else sys.argv[1:])
        RESULTS.write_text(f"# Cold import time\n\nCommand: `{command.strip()}` ({args.rounds} rounds, "
                           f"Python {sys.version.split()[0]}, 2 cores)\n\n{table}\n")


if __name__ == "__main__":
    main()
