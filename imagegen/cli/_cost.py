"""``imagegen cache stats|clear|prune`` and ``imagegen cost``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import ConfigurationError, ImageGenError
from . import ConfigOpt, JsonOpt, app, fail, make_client
from ._output import emit, print_table, table

cache_app = typer.Typer(help="Inspect and manage the result cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _cache_of(client: Any) -> Any:
    if client.cache is None:
        raise ConfigurationError("the cache is off (cache.backend = \"off\")")
    return client.cache


def _cache_command(action: str, as_json: bool, config: Path | None) -> None:
    try:
        with make_client(config) as client:
            cache = _cache_of(client)
            done = {"clear": "cleared", "prune": "pruned"}
            payload = cache.stats() if action == "stats" else {done[action]: getattr(cache, action)()}
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit(payload)
    else:
        typer.echo("  ".join(f"{k}={v}" for k, v in payload.items()))


@cache_app.command("stats")
def cache_stats(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Entries, bytes, hits and misses."""
    _cache_command("stats", as_json, config)


@cache_app.command("clear")
def cache_clear(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Remove every cached result."""
    _cache_command("clear", as_json, config)


@cache_app.command("prune")
def cache_prune(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Remove expired results and shrink the cache under its size cap."""
    _cache_command("prune", as_json, config)


@app.command()
def cost(by: Annotated[str, typer.Option("--by", metavar="day|provider|model", help="How to group the spend.")] = "day",
         days: Annotated[float | None, typer.Option("--days", metavar="N", help="Only the last N days.")] = None,
         chart: Annotated[Path | None, typer.Option("--chart", metavar="FILE", help="Write a PNG chart here.")] = None,
         as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Report spend from the ledger, by day, provider or model."""
    if by not in ("day", "provider", "model"):
        raise fail(ConfigurationError("--by takes day, provider or model"), as_json)
    from .._services import points_at_emulators

    since = time.time() - days * 86400 if days is not None else None
    try:
        with make_client(config) as client:
            if client.ledger is None:
                raise ConfigurationError("the ledger is off (ledger.backend = \"off\")")
            rows = client.ledger.summary(by=by, since=since)
            emulated = points_at_emulators(client.config)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    total = round(sum(r["usd"] for r in rows), 9)
    if chart is not None:
        _write_chart(rows, by, chart)
    if as_json:
        emit({"by": by, "rows": rows, "total_usd": total, "chart": str(chart) if chart else None,
              "emulated": emulated})
        return
    columns = (by, "calls", "USD", "credits", "cached", "estimated")
    cells = [[row["key"], row["calls"], f"{row['usd']:.4f}", f"{row['credits']:g}", row["cached"], row["estimated"]]
             for row in rows]
    cells.append(["total", sum(r["calls"] for r in rows), f"{total:.4f}", "", "", ""])
    title = f"spend by {by}" + (" (emulator runs: this config's providers are all emulators)" if emulated else "")
    print_table(table(title, columns, cells, keep=(by,), right=columns[1:]))


def _write_chart(rows: list[dict[str, Any]], by: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError("--chart needs matplotlib: pip install \"imagegen[bench]\"") from None
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar([r["key"] for r in rows], [r["usd"] for r in rows], color="#3b7dd8")
    ax.set_ylabel("USD")
    ax.set_title(f"imagegen spend by {by}")
    ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
