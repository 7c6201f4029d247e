"""What the CLI prints: one JSON object with ``--json``, short plain lines or rich tables otherwise.

User text (prompts, paths, messages, ids) never goes through rich markup: lines and tables
are plain text (``typer.echo``), and the one rich console (progress bars, the status line)
reads no markup, so a prompt holding ``[/]`` or ``[bold]`` prints as written. Ids and model
names are never cut: listings put them first on their own line, tables size every column to
its widest cell.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from .._errors import ImageGenError
    from .._models import ImageResult, Job

#: ``--out`` is a file name (not a directory) when it ends with one of these.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def image_paths(out: Path, count: int) -> list[Path]:
    """Where ``count`` images go: ``out`` itself when it names an image file (numbered when
    there are several: fox-1.png, fox-2.png), else the directory ``out`` (named by content)."""
    if out.suffix.lower() not in IMAGE_SUFFIXES or out.is_dir():
        return [out] * count
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, count + 1)]


def save_images(result: ImageResult, out: Path) -> list[dict[str, Any]]:
    """Write the images into ``out`` (a folder, or an image file name: see ``image_paths``); a disk
    that refuses is a ``StorageError`` naming the job to fetch them again from (``imagegen wait
    JOB --out DIR``), never a traceback."""
    targets = image_paths(out, len(result.images))
    rows = []
    try:
        for image, target in zip(result.images, targets, strict=True):
            if target == out and not out.suffix:
                out.mkdir(parents=True, exist_ok=True)
            path = image.save(target)
            rows.append({"path": str(path), "mime_type": _saved_mime(path, image.mime_type), "width": image.width,
                         "height": image.height, "sha256": image.sha256, "url": image.url})
    except OSError as exc:
        from .._errors import StorageError
        from .._storage import describe_fault

        again = f"; imagegen wait {result.job_id} --out OTHER_DIR writes them without paying again" \
            if result.job_id else ""
        raise StorageError(f"the images could not be written to {out} ({describe_fault(exc)}){again}",
                           store="output directory") from exc
    return rows


def _saved_mime(path: Path, original: str) -> str:
    from .._imaging import format_for_suffix, mime_for_format

    fmt = format_for_suffix(path.suffix)
    return mime_for_format(fmt) if fmt else original


def cost_payload(cost: Any) -> dict[str, Any]:
    return {"usd": cost.usd, "credits": cost.credits, "estimated": cost.estimated}


def result_payload(result: ImageResult, out: Path) -> dict[str, Any]:
    return {
        "provider": result.provider,
        "model": result.model,
        "job_id": result.job_id,
        "images": save_images(result, out),
        "cost": cost_payload(result.cost),
        "usage": result.usage.model_dump(mode="json", exclude_none=True),
        "latency_s": round(result.latency_s, 4),
        "cached": result.cached,
        "attempts": [a.model_dump(mode="json") for a in result.attempts],
        "warnings": result.warnings,
        "text": result.text,
    }


def job_payload(job: Job, out: Path) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "provider": job.provider,
        "model": job.model,
        "status": job.status,
        "error": job.error,
        "result": result_payload(job.result, out) if job.result is not None else None,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }


def usd_text(usd: float | None) -> str:
    return "unknown" if usd is None else f"${usd:.4f}"


def print_result(result: ImageResult, out: Path) -> None:
    for row in save_images(result, out):
        typer.echo(f"{row['path']}  {row['width']}x{row['height']} {row['mime_type']}")
    kind = "estimated" if result.cost.estimated else "reported"
    cached = "  (from the cache, at no cost)" if result.cached else ""
    typer.echo(f"provider {result.provider}  model {result.model}  latency {result.latency_s:.2f}s  "
               f"cost {usd_text(result.cost.usd)} ({kind}){cached}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}")
    if result.job_id:
        typer.echo(f"job {result.job_id}")


def print_job(job: Job, out: Path) -> None:
    typer.echo(f"job {job.id}  status {job.status}  provider {job.provider}")
    if job.result is not None:
        print_result(job.result, out)
    elif job.error:
        typer.secho(str(job.error.get("message", job.error)), fg=typer.colors.RED)


# -- errors ---------------------------------------------------------------------------------

def _config_hint(error: ImageGenError) -> list[str]:
    """What to do when the error comes from a missing or incomplete configuration."""
    from .._config import config_locations, find_config_file
    from .._errors import ConfigurationError, MissingCredentialsError

    if not isinstance(error, ConfigurationError):
        return []
    try:
        found = find_config_file()
    except OSError:
        found = None
    lines = [f"config file: {found}" if found else f"no config file found: {config_locations()}"]
    if found is None or isinstance(error, MissingCredentialsError):
        lines.append("no API key yet? 'imagegen demo' runs offline; 'imagegen emulate gemini --port 8701' serves "
                     "a local emulator to point a provider's base_url at (see the README)")
    return lines


def print_error(error: ImageGenError) -> None:
    """The error's type and message on stderr, then what to do about a configuration problem."""
    typer.secho(f"{type(error).__name__}: {error}", fg=typer.colors.RED, err=True)
    for line in _config_hint(error):
        typer.echo(f"  {line}", err=True)


# -- tables ---------------------------------------------------------------------------------

def console(*, stderr: bool = False) -> Console:
    """A rich console that never reads markup or highlights: what we print is user text."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, highlight=False, emoji=False)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, keep: Sequence[str] = (),
          right: Sequence[str] = ()) -> str:
    """A plain-text table: every cell whole (ids and model names are never cut), columns as wide
    as their widest cell, numbers right-aligned. ``keep`` names the columns that hold ids (kept
    for callers; no column is ever cut)."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if columns[i] in right else v.ljust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    return "\n".join([title, line(list(columns)), "  ".join("-" * w for w in widths), *map(line, cells)])


def _cell(value: Any) -> str:
    return "-" if value is None else " ".join(str(value).split())


def print_table(text: str) -> None:
    typer.echo(text)


# -- signs of life --------------------------------------------------------------------------

class _Countdown:
    """Rendered anew at every refresh of the status line: the seconds left tick down."""

    def __init__(self, head: str, until: float) -> None:
        self.head, self.until = head, until

    def __rich__(self) -> Any:
        from rich.text import Text

        left = max(0.0, self.until - time.monotonic())
        return Text(f"{self.head}, retrying in {left:.0f} s")


class _EventHandler(logging.Handler):
    """Shows the client's ``imagegen_event`` log records (a retry or a fallback about to wait)."""

    def __init__(self, show: Any) -> None:
        super().__init__(logging.INFO)
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "imagegen_event", None) is not None:
            self._show(record)


@contextmanager
def show_events(label: str, *, sink: Any = None) -> Iterator[None]:
    """While a call runs, show that it is alive: on a terminal, a status line on stderr that
    names each retry or fallback and counts its wait down ("gemini: rate limited (429),
    retrying in 34 s"); elsewhere one plain line per event on stderr. ``sink(text)`` sends the
    lines elsewhere (``imagegen batch`` prints them above its progress bar)."""
    logger = logging.getLogger("imagegen")
    status = None
    if sink is None and sys.stderr.isatty():
        from rich.text import Text  # a Text, not a str: rich would read a str's brackets as markup

        status = console(stderr=True).status(Text(label))

    def show(record: logging.LogRecord) -> None:
        text = record.getMessage()
        if status is not None:
            wait = getattr(record, "imagegen_wait_s", None)
            head = getattr(record, "imagegen_head", None)
            from rich.text import Text

            status.update(_Countdown(head, time.monotonic() + wait) if wait and head else Text(text))
        elif sink is not None:
            sink(text)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    handler = _EventHandler(show)
    previous = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        if status is not None:
            with status:
                yield
        else:
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
