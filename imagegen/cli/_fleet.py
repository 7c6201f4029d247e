"""``imagegen worker``, ``imagegen batch PROMPTS --fleet URL`` and ``imagegen batch
status|pause|resume|cancel ID``: a batch run by a fleet of workers (see ``imagegen.fleet``).

The batch control verbs are registered as hidden ``batch-<verb>`` commands; ``main`` sends
``imagegen batch <verb> ...`` to them (`route_batch_verb`), so ``batch PROMPTS`` keeps its
one positional argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._errors import ImageGenError
from . import EXIT_PROVIDER, ConfigOpt, JsonOpt, app, fail, make_client
from ._output import console, emit
from ._prompts import read_prompt_file

if TYPE_CHECKING:  # pragma: no cover
    from .._models import ImageRequest

VERBS = ("status", "pause", "resume", "cancel")
FleetOpt = Annotated[str | None, typer.Option(
    "--fleet", envvar="IMAGEGEN_FLEET_URL", help="The fleet's Redis URL (else [fleet] url in the config).")]
WatchOpt = Annotated[bool, typer.Option("--watch", help="Show a progress bar until the batch is over.")]


def route_batch_verb(argv: list[str]) -> list[str]:
    """``batch status ID ...`` -> ``batch-status ID ...`` (a prompts file is never named like a verb)."""
    if len(argv) >= 2 and argv[0] == "batch" and argv[1] in VERBS:
        return [f"batch-{argv[1]}", *argv[2:]]
    return argv


def out_location(out: Path) -> str:
    """``--out`` as the user wrote it: typer hands over a Path, which folds ``s3://b`` to ``s3:/b``."""
    text = str(out)
    scheme, sep, rest = text.partition(":/")
    if sep and scheme.isalnum() and len(scheme) > 1 and not rest.startswith("/"):
        return f"{scheme}://{rest}"
    return text


def read_requests(path: Path, fields: dict[str, Any]) -> list[ImageRequest]:
    """The prompt file's requests (the one format of ``_prompts``), ``fields`` under each line's own."""
    return [line.request(fields) for line in read_prompt_file(path)]


def submit_to_fleet(prompts: Path, fields: dict[str, Any], *, fleet_url: str | None, out: str,
                    batch_id: str | None, watch: bool, as_json: bool, config: Path | None) -> None:
    """``imagegen batch PROMPTS --fleet URL``: enqueue, print the id, optionally watch."""
    try:
        requests = read_requests(prompts, fields)
        with make_client(config) as client, client.fleet(fleet_url) as fleet:
            batch_id = fleet.submit(requests, out=out, batch_id=batch_id)
            if as_json:
                emit({"batch_id": batch_id, "total": len(requests), "fleet": fleet.url})
            else:
                typer.echo(f"batch {batch_id}: {len(requests)} prompts queued on {fleet.url}")
            if watch:
                _watch(fleet, batch_id, quiet=as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None


@app.command()
def worker(fleet: FleetOpt = None,
           concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1,
                                                    help="Prompts this worker runs at once.")] = 4,
           name: Annotated[str | None, typer.Option("--name", help="Worker name (default host-pid).")] = None,
           exit_when_idle: Annotated[bool, typer.Option(
               "--exit-when-idle", help="Stop once no batch is left instead of waiting for more.")] = False,
           as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Run prompts from the fleet's batches until stopped (SIGTERM/Ctrl-C finish what was started)."""
    import asyncio  # here, not at the top: every imagegen command imports this module
    import signal

    from .. import AsyncClient

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with AsyncClient(config) as client:
            handle = client.fleet(fleet)
            try:
                return int(await handle.work(concurrency=concurrency, name=name, exit_when_idle=exit_when_idle,
                                             stop=stop))
            finally:
                await handle.aclose()

    try:
        processed = asyncio.run(run())
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({"processed": processed})
    else:
        typer.echo(f"worker stopped after {processed} prompt(s)")


def _control(verb: str, batch_id: str, fleet_url: str | None, watch: bool, as_json: bool,
             config: Path | None) -> None:
    try:
        with make_client(config) as client, client.fleet(fleet_url) as fleet:
            status = getattr(fleet, verb)(batch_id)
            if watch and not status.over:
                status = _watch(fleet, batch_id, quiet=as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit(status.model_dump(mode="json"))
    else:
        _print_status(status)
    if status.state == "done" and status.failed:
        raise typer.Exit(EXIT_PROVIDER)


@app.command("batch-status", hidden=True)
def batch_status(batch_id: str, fleet: FleetOpt = None, watch: WatchOpt = False, as_json: JsonOpt = False,
                 config: ConfigOpt = None) -> None:
    """Progress, per-provider throughput, spend, failures and ETA of a fleet batch."""
    _control("status", batch_id, fleet, watch, as_json, config)


@app.command("batch-pause", hidden=True)
def batch_pause(batch_id: str, fleet: FleetOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Workers take no new prompts from the batch (started ones finish)."""
    _control("pause", batch_id, fleet, False, as_json, config)


@app.command("batch-resume", hidden=True)
def batch_resume(batch_id: str, fleet: FleetOpt = None, watch: WatchOpt = False, as_json: JsonOpt = False,
                 config: ConfigOpt = None) -> None:
    """Let workers take the batch's prompts again."""
    _control("resume", batch_id, fleet, watch, as_json, config)


@app.command("batch-cancel", hidden=True)
def batch_cancel(batch_id: str, fleet: FleetOpt = None, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """No prompt of the batch starts any more; results so far are assembled."""
    _control("cancel", batch_id, fleet, False, as_json, config)


def _watch(fleet: Any, batch_id: str, *, quiet: bool) -> Any:
    """A progress bar fed from Redis: any machine can attach to any batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    status = None
    # markup=False: the description is the batch id, user text.
    columns = [TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}", markup=False)]
    with Progress(*columns, disable=quiet, transient=False) as progress:
        task = progress.add_task(batch_id, total=None, detail="")
        for status in fleet.watch(batch_id):
            eta = "-" if status.eta_s is None else f"{status.eta_s:.0f}s"
            detail = (f"{status.state}  {status.per_minute:.0f}/min  ${status.usd:.4f}  "
                      f"{status.failed} failed  ETA {eta}")
            progress.update(task, total=status.total, completed=status.finished, detail=detail)
    return status


def _print_status(status: Any) -> None:
    # Plain text through a console that reads no markup: ids and provider messages are user text.
    from ._output import print_table, table

    out = console()
    eta = "-" if status.eta_s is None else f"{status.eta_s:.0f}s"
    out.print(f"batch {status.batch_id}  {status.state}"
              + (f" ({status.reason})" if status.reason else "")
              + f"  {status.finished}/{status.total} done ({status.succeeded} succeeded, {status.failed} "
              f"failed{f', {status.cancelled} cancelled' if status.cancelled else ''})  "
              f"{status.per_minute:.1f}/min  spent ${status.usd:.4f}  ETA {eta}")
    out.print(f"results: {status.out}")
    if status.workers:
        out.print("workers: " + ", ".join(f"{name} (holding {w.holding}, idle {w.idle_s:.0f}s)"
                                          for name, w in sorted(status.workers.items())))
    if status.providers:
        rows = [[provider, row.done, f"{row.per_minute:.1f}", f"{row.usd:.4f}"]
                for provider, row in sorted(status.providers.items())]
        print_table(table("per provider", ("provider", "done", "per minute", "usd"), rows, keep=("provider",),
                          right=("done", "per minute", "usd")))
    for failure in status.failures[:10]:
        error = failure.get("error") or {}
        typer.secho(f"#{failure['index']} {error.get('type')}: {error.get('message')}", fg=typer.colors.RED)
