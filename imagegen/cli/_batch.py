"""``imagegen batch`` and ``imagegen jobs``.

The prompt file is the one format of ``_prompts`` (text lines, or JSON lines with any request
field). A batch writes one JSON line per finished prompt to ``<out>/batch.jsonl`` as results
arrive. Run the same command again after an interruption, or after editing the prompts file,
and it does exactly the new work: every line carries an idempotency key derived from what it
asks for (``_resume``), so a line finished before is skipped, a job submitted but not
finished is resumed from the job store, and two batches on one file pay once per prompt.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._errors import ImageGenError, StorageError
from . import (
    EXIT_INTERRUPTED,
    EXIT_PROVIDER,
    ConfigOpt,
    JsonOpt,
    ProviderOpt,
    RatioOpt,
    SizeOpt,
    app,
    fail,
    make_client,
)
from ._output import emit, save_images, show_events
from ._prompts import read_prompt_file

if TYPE_CHECKING:  # pragma: no cover
    from .._models import ImageResult
    from ._resume import BatchItem

RESULTS_NAME = "batch.jsonl"


def finished_lines(results: Path) -> dict[int, dict[str, Any]]:
    """Indexes already done in an earlier run (the last line for an index wins); the vendor-batch
    path resumes by these (the standard path by content keys, ``_resume``)."""
    done: dict[int, dict[str, Any]] = {}
    if results.exists():
        for line in results.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if isinstance(record.get("index"), int):
                done[record["index"]] = record
    return {i: r for i, r in done.items() if r.get("status") == "succeeded"}


@app.command()
def batch(prompts: Annotated[Path, typer.Argument(
              metavar="PROMPTS", help="A prompt file: one prompt per line, or a JSON object of request fields "
              '(e.g. {"prompt": "a fox", "size": "2K", "images": ["in.png"]}); # starts a comment.')],
          concurrency: Annotated[int, typer.Option("--concurrency", "-c", metavar="N", help="Requests at once.")] = 4,
          provider: ProviderOpt = None, size: SizeOpt = None, aspect_ratio: RatioOpt = None,
          out: Annotated[Path, typer.Option(
              "--out", metavar="DIR", help="Where the images and batch.jsonl go (with --fleet, also an fsspec URL "
                                           "such as s3://bucket/prefix).")] = Path("imagegen-batch"),
          as_json: JsonOpt = False, config: ConfigOpt = None,
          fleet: Annotated[str | None, typer.Option(
              "--fleet", metavar="REDIS_URL", help="Queue the batch on a fleet's Redis (redis://...) for imagegen "
                                                   "workers; prints its id.")] = None,
          watch: Annotated[bool, typer.Option("--watch", help="With --fleet: show progress until done.")] = False,
          vendor_batch: Annotated[bool, typer.Option(
              "--vendor-batch", help="Send the prompts as one vendor batch (Gemini: half price, up to 24 h).")] = False,
          wait: Annotated[bool, typer.Option("--wait/--no-wait", help="With --vendor-batch: wait for the results, "
                                             "or submit and return (run again to collect).")] = True,
          wait_timeout: Annotated[float, typer.Option(
              "--wait-timeout", metavar="SECONDS", help="With --vendor-batch: seconds to wait.")] = 25 * 3600.0,
          ) -> None:
    """Generate every request of a prompt file; resumable.

    Failures do not stop the batch. Command-line options fill in what a line does not set.
    Interrupted (Ctrl-C), run the same command again: it skips what succeeded and resumes what
    was submitted. With --fleet the batch runs on imagegen workers (imagegen worker), and
    imagegen batch status|pause|resume|cancel ID steer it from any machine.
    """
    if fleet:
        from ._fleet import out_location, submit_to_fleet

        fields = {k: v for k, v in {"provider": provider, "size": size, "aspect_ratio": aspect_ratio}.items() if v}
        return submit_to_fleet(prompts, fields, fleet_url=fleet, out=out_location(out), batch_id=None,
                               watch=watch, as_json=as_json, config=config)
    try:
        lines = read_prompt_file(prompts)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from .._storage import describe_fault

            raise StorageError(f"cannot create the output directory {out} ({describe_fault(exc)})",
                               store="output directory") from None
        results = out / RESULTS_NAME
        fields = {k: v for k, v in {"provider": provider, "size": size, "aspect_ratio": aspect_ratio}.items() if v}
        out.mkdir(parents=True, exist_ok=True)
        if vendor_batch:
            from ._vendor_batch import run_vendor_batch

            return run_vendor_batch(prompts, lines, finished_lines(results), fields, out, results, wait=wait,
                                    timeout=wait_timeout, as_json=as_json, config=config)
        from ._resume import finished_keys, keyed_items

        items = keyed_items(lines, fields)
        finished = finished_keys(results, items)
        pending = [item for item in items if item.key not in finished]
        done = len(items) - len(pending)
        with make_client(config) as client:
            counts = _run_batch(client, pending, concurrency, out, results, as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    except KeyboardInterrupt:
        typer.secho("interrupted — run the same command again to resume", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    summary = {"total": len(lines), "skipped": done, **counts, "results_file": str(results)}
    if as_json:
        emit(summary)
    else:
        typer.echo(f"{summary['succeeded']} succeeded, {summary['failed']} failed, "
                   f"{summary['skipped']} already done; results in {results}")
    if counts["failed"]:
        raise typer.Exit(EXIT_PROVIDER)


def _run_batch(client: Any, pending: list[BatchItem], concurrency: int, out: Path, results: Path,
               quiet: bool) -> dict[str, int]:
    from rich.progress import Progress

    from ._output import console

    counts = {"succeeded": 0, "failed": 0}
    lock = threading.Lock()
    with Progress(disable=quiet, transient=False, console=console(stderr=True)) as progress, \
            results.open("a", encoding="utf-8") as sink:
        task = progress.add_task("generating", total=len(pending))

        def record(position: int, outcome: ImageResult | ImageGenError) -> None:
            item = pending[position]
            line: dict[str, Any] = {"index": item.index, "prompt": item.prompt, "key": item.key}
            if not isinstance(outcome, ImageGenError):
                try:
                    line.update(status="succeeded", job_id=outcome.job_id, provider=outcome.provider,
                                cost_usd=outcome.cost.usd, images=save_images(outcome, out))
                    if outcome.warnings:  # e.g. a store that failed after the call was paid
                        line["warnings"] = outcome.warnings
                except ImageGenError as exc:  # not written: a re-run fetches the paid job again
                    outcome = exc
            if isinstance(outcome, ImageGenError):
                line.update(status="failed", error=outcome.to_dict())
            with lock:
                sink.write(json.dumps(line) + "\n")
                sink.flush()
                counts[line["status"]] += 1
                progress.advance(task)

        # Retries and fallbacks that wait show above the bar (on stderr without a terminal).
        with show_events("generating", sink=progress.console.print if not quiet else None):
            client.generate_many([item.request for item in pending], concurrency=concurrency, on_result=record)
    return counts


@app.command()
def jobs(limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="How many jobs.")] = 20,
         as_json: JsonOpt = False,
         prune_days: Annotated[float | None, typer.Option(
             "--prune-older-than", metavar="DAYS", min=0,
             help="First forget finished jobs (and their images) last updated more than DAYS days ago; "
                  "queued and running jobs are kept.")] = None,
         config: ConfigOpt = None) -> None:
    """List recent jobs (optionally pruning old finished ones first)."""
    pruned = None
    try:
        with make_client(config) as client:
            if prune_days is not None:
                pruned = client.jobs.prune(prune_days * 86400)
            recent = client.jobs.recent(limit)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    rows = [{"job_id": j.id, "provider": j.provider, "model": j.model, "status": j.status,
             "prompt": j.request.prompt if j.request else None, "updated_at": j.updated_at.isoformat(),
             "images": len(j.result.images) if j.result else 0} for j in recent]
    if as_json:
        emit({"jobs": rows} if pruned is None else {"pruned": pruned, "jobs": rows})
        return
    if pruned is not None:
        typer.echo(f"pruned {pruned} finished job(s) older than {prune_days:g} day(s)")
    if not recent:
        typer.echo("no jobs yet")
    for job in recent:
        # Two lines a job, the id alone at the start of the first: whole at any width, and
        # copied into imagegen status / wait with a double-click.
        images = len(job.result.images) if job.result else 0
        typer.echo(f"{job.id}  {job.status}  {job.updated_at.astimezone():%Y-%m-%d %H:%M}")
        prompt = " ".join((job.request.prompt if job.request else "").split())
        typer.echo(f"    {job.model or job.provider}, {images} image{'s' if images != 1 else ''}: {_short(prompt)}")


def _short(text: str, limit: int = 60) -> str:
    """Free text in a listing: at most ``limit`` characters (ids are never shortened)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
