"""How ``imagegen bench`` shows its rows: a rich table, and a PNG chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._bench import BenchReport

__all__ = ["print_table", "write_chart"]


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cost(usd: float | None, credits: float | None) -> str:
    if usd is not None:
        return f"{usd:.4f}"
    return "-" if credits is None else f"{credits:g} cr"


def _rate(value: float) -> str:
    return f"{value * 100:.0f}%"


def print_table(report: BenchReport, console: Any = None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    table = Table(title=f"imagegen bench: {len(report.cassettes)} cassettes replayed at {report.speed:g}x "
                        f"in {report.wall_s:.1f} s", box=box.SIMPLE_HEAD,
                  caption="latency to result in real-world seconds; polls per polled job; KB sent and "
                          "received per call; cost per image: price-book estimate/what the provider reported")
    table.add_column("provider / model", overflow="fold")
    for column in ("calls", "latency\np50/p95", "polls", "KB", "$/image\nest/real", "failed/\nfell back"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in report.rows():
        cost = row["cost_per_image"]
        name = Text(row["provider"])
        name.append(f"\n{row['model']}", style="dim")
        table.add_row(name, str(row["calls"]),
                      f"{_s(row['latency_p50_s'])}/{_s(row['latency_p95_s'])}", f"{row['polls_per_job']:g}",
                      f"{row['bytes_per_call'] / 1024:.1f}",
                      f"{_cost(cost['estimated_usd'], cost['estimated_credits'])}/"
                      f"{_cost(cost['actual_usd'], cost['actual_credits'])}",
                      f"{_rate(row['failure_rate'])}/{_rate(row['fallback_rate'])}")
    console.print(table)
    console.print(Text(f"where from: {report.provenance()}", style="bold"))
    for note in report.skipped:
        console.print(Text(f"skipped {note}", style="dim"))


def write_chart(report: BenchReport, path: str | Path) -> Path:
    """Latency distributions (left) and cost per image, estimated vs actual (right), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows() if r["latencies_s"]]
    labels = [f"{r['provider']}\n{r['model']}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, max(4.0, 0.55 * len(rows) + 1.5)))
    left.boxplot([r["latencies_s"] for r in rows], orientation="horizontal", showfliers=True)
    left.set_yticks(range(1, len(rows) + 1), labels)
    for y, row in enumerate(rows, start=1):
        left.scatter(row["latencies_s"], [y] * len(row["latencies_s"]), s=12, alpha=0.6, color="tab:blue")
    left.set_xlabel("latency to result, s (real-world)")
    left.set_title("Latency distribution per provider/model")
    positions = range(len(rows))
    estimated = [r["cost_per_image"]["estimated_usd"] or 0.0 for r in rows]
    actual = [r["cost_per_image"]["actual_usd"] or 0.0 for r in rows]
    right.barh([p + 0.2 for p in positions], estimated, height=0.4, label="estimated (price book)")
    right.barh([p - 0.2 for p in positions], actual, height=0.4, label="actual (reported)")
    right.set_yticks(list(positions), labels)
    right.set_xlabel("USD per image")
    right.set_title("Cost per image")
    right.legend(loc="lower right")
    counts = report.sources()
    origin = "emulator recordings" if not counts["service"] else (
        "real-service recordings" if not counts["emulator"] else "emulator and real-service recordings")
    fig.suptitle(f"imagegen bench ({len(report.cassettes)} cassettes: {origin}; replayed at {report.speed:g}x)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
