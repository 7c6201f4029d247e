"""``imagegen record`` and ``imagegen bench``: cassettes with timing, and offline comparisons."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import ImageGenError
from . import EXIT_INTERRUPTED, EXIT_INVALID, EXIT_PROVIDER, ConfigOpt, JsonOpt, app, fail
from ._output import emit
from ._prompts import read_prompt_file


def shipped_cassettes() -> Path:
    """``./cassettes`` when there is one, else the repository's (an editable install or a clone)."""
    here = Path("cassettes")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "cassettes"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "request"


@app.command()
def record(provider: Annotated[str, typer.Option("--provider", "-p", metavar="NAME",
                                                 help="Provider, provider/model or route.")],
           prompts: Annotated[Path, typer.Option(
               "--prompts", metavar="FILE",
               help="A prompt file (one request per line; see 'imagegen batch --help').")],
           out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Folder the cassettes are written to.")],
           time_scale: Annotated[float, typer.Option(
               "--time-scale", metavar="FACTOR",
               help="How much faster than real the server runs (an emulator's --time-scale).")] = 1.0,
           as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Record real calls into cassettes, one per prompt.

    The calls go to a service (with a key) or an emulator.
    Every call goes to the provider (the cache is not used) from a fresh provider state (no
    saved Wireflow workflow ids), so each cassette replays on its own. Auth headers, key
    parameters and every configured api key value are filtered out; each answer keeps the time
    it took, so imagegen bench can replay it at that pace. A prompt that leaves no cassette
    (the call failed before anything was sent) is named, and the command exits non-zero.
    """
    from ..recording import record_cassette

    try:
        lines = read_prompt_file(prompts)
        requests = [line.request({"provider": provider}) for line in lines]
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    written: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    try:
        for index, (line, request) in enumerate(zip(lines, requests, strict=True), start=1):
            path = out / f"{index:03d}-{_slug(request.prompt)}.yaml"
            try:
                info = record_cassette(path, config, [request], time_scale=time_scale)
                outcome = info.outcomes[0]
            except ImageGenError as exc:  # the config itself is wrong: nothing was called
                outcome = {"outcome": type(exc).__name__, "error": str(exc)}
            entry = {"line": line.where, "prompt": request.prompt, **outcome}
            if path.exists():
                written.append({"cassette": str(path), **entry})
                if not as_json:
                    typer.echo(f"{path}  {outcome['outcome']}  {outcome.get('latency_s', 0.0):.2f}s")
            else:
                missing.append(entry)
                if not as_json:
                    typer.secho(f"{line.where}: no cassette: {outcome['outcome']}: {outcome.get('error', '')}",
                                fg=typer.colors.RED, err=True)
    except KeyboardInterrupt:
        typer.secho(f"interrupted — {len(written)} cassette(s) written to {out}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        emit({"cassettes": written, "failed": missing})
    elif missing:
        typer.secho(f"{len(written)} of {len(requests)} cassettes written; {len(missing)} prompt(s) left none",
                    fg=typer.colors.RED, err=True)
    if missing:
        raise typer.Exit(_exit_for(missing))


def _exit_for(missing: list[dict[str, Any]]) -> int:
    """2 when every failure is the request's or the config's fault, else 3 (as for one call)."""
    from .. import _errors

    def invalid(name: str) -> bool:
        cls = getattr(_errors, name, None)
        return isinstance(cls, type) and issubclass(cls, (_errors.InvalidRequestError, _errors.ConfigurationError,
                                                          _errors.UnsupportedFeatureError))

    return EXIT_INVALID if all(invalid(m["outcome"]) for m in missing) else EXIT_PROVIDER


@app.command()
def bench(paths: Annotated[list[Path] | None, typer.Argument(
              metavar="PATH", help="Cassette files or folders (default: the shipped cassettes/).")] = None,
          speed: Annotated[float, typer.Option(
              "--speed", metavar="FACTOR",
              help="Replay this many times faster than real-world time (1 = the pace of the real service; "
                   "latencies are reported in real-world seconds whatever the speed).")] = 100.0,
          chart: Annotated[Path | None, typer.Option("--chart", metavar="FILE", help="Write a PNG chart here.")]
          = None,
          as_json: JsonOpt = False) -> None:
    """Replay cassettes offline and compare providers and models.

    Cassettes are replayed through the real client.
    The output says where the cassettes were recorded: against a real service (with the date)
    or against imagegen's emulators, whose latencies are the emulators' latency models, not
    measured service latencies (the shipped cassettes/ are emulator recordings).
    """
    import asyncio

    from ..recording._bench import run_bench
    from ..recording._report import print_table, write_chart

    if speed <= 0:
        typer.secho("--speed must be > 0", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    targets = paths or [shipped_cassettes()]
    missing = [str(p) for p in targets if not p.exists()]
    if missing:
        typer.secho(f"no such file or folder: {', '.join(missing)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    report = asyncio.run(run_bench(targets, speed=speed))
    if not report.cassettes:
        typer.secho("no cassettes with imagegen metadata found (record some with `imagegen record`)",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if chart is not None:
        write_chart(report, chart)
    if as_json:
        payload = report.to_json()
        if chart is not None:
            payload["chart"] = str(chart)
        emit(payload)
        return
    print_table(report)
    if chart is not None:
        typer.echo(f"chart: {chart}")
