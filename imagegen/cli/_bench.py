"""``imagegen record`` and ``imagegen bench``: cassettes with timing, and offline comparisons."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import ImageGenError, InvalidRequestError
from . import ConfigOpt, JsonOpt, app, fail
from ._output import emit


def shipped_cassettes() -> Path:
    """``./cassettes`` when there is one, else the repository's (an editable install or a clone)."""
    here = Path("cassettes")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "cassettes"


def read_prompts(path: Path, provider: str) -> list[Any]:
    """One request per line: a prompt, or a JSON object of request fields; ``#`` lines are comments."""
    from .._models import ImageRequest

    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("{"):
            try:
                fields = json.loads(line)
            except ValueError as exc:
                raise InvalidRequestError(f"{path}:{number}: not valid JSON ({exc})") from None
            images = [p if "://" in str(p) else str((path.parent / p).resolve()) for p in fields.pop("images", [])]
            if images:
                fields.update(operation="edit", images=images)
        else:
            fields = {"prompt": line}
        fields.setdefault("provider", provider)
        requests.append(ImageRequest.build(**fields))
    if not requests:
        raise InvalidRequestError(f"{path} holds no prompts")
    return requests


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "request"


@app.command()
def record(provider: Annotated[str, typer.Option("--provider", "-p", help="Provider, provider/model or route.")],
           prompts: Annotated[Path, typer.Option("--prompts", help="One prompt (or JSON request) per line.")],
           out: Annotated[Path, typer.Option("--out", help="Folder the cassettes are written to.")],
           time_scale: Annotated[float, typer.Option(
               "--time-scale", help="How much faster than real the server runs (an emulator's --time-scale).")] = 1.0,
           as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Make real calls (a service with a key, or an emulator) and write one cassette per prompt.

    Auth headers, key parameters and every configured api key value are filtered out;
    each answer keeps the time it took, so ``imagegen bench`` can replay it at that pace.
    """
    from ..recording import record_cassette

    try:
        requests = read_prompts(prompts, provider)
        written = []
        for index, request in enumerate(requests, start=1):
            path = out / f"{index:03d}-{_slug(request.prompt)}.yaml"
            info = record_cassette(path, config, [request], time_scale=time_scale)
            written.append({"cassette": str(path), **info.outcomes[0]})
            if not as_json:
                outcome = info.outcomes[0]
                typer.echo(f"{path}  {outcome['outcome']}  {outcome['latency_s']:.2f}s")
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({"cassettes": written})


@app.command()
def bench(paths: Annotated[list[Path] | None, typer.Argument(
              help="Cassette files or folders (default: the shipped cassettes/).")] = None,
          speed: Annotated[float, typer.Option(
              "--speed", help="Replay this many times faster than recorded (1 = recorded pace).")] = 100.0,
          chart: Annotated[Path | None, typer.Option("--chart", help="Write a PNG chart here.")] = None,
          as_json: JsonOpt = False) -> None:
    """Replay cassettes offline through the real client and compare providers and models."""
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
