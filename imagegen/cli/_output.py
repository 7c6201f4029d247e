"""What the CLI prints: one JSON object with ``--json``, a short rich summary otherwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .._models import ImageResult, Job


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def save_images(result: ImageResult, out: Path) -> list[dict[str, Any]]:
    """Write the images into ``out``; a disk that refuses is a ``StorageError`` naming the job to
    fetch them again from (``imagegen wait JOB --out DIR``), never a traceback."""
    rows = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for image in result.images:
            path = image.save(out)
            rows.append({"path": str(path), "mime_type": image.mime_type, "width": image.width,
                         "height": image.height, "sha256": image.sha256, "url": image.url})
    except OSError as exc:
        from .._errors import StorageError
        from .._storage import describe_fault

        again = f"; `imagegen wait {result.job_id} --out OTHER_DIR` writes them without paying again" \
            if result.job_id else ""
        raise StorageError(f"the images could not be written to {out} ({describe_fault(exc)}){again}",
                           store="output directory") from exc
    return rows


def result_payload(result: ImageResult, out: Path) -> dict[str, Any]:
    return {
        "provider": result.provider,
        "model": result.model,
        "job_id": result.job_id,
        "images": save_images(result, out),
        "cost": {"usd": result.cost.usd, "credits": result.cost.credits, "estimated": result.cost.estimated},
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


def print_result(result: ImageResult, out: Path) -> None:
    from rich.console import Console

    console = Console(soft_wrap=True)
    for row in save_images(result, out):
        console.print(f"[bold]{row['path']}[/]  {row['width']}x{row['height']} {row['mime_type']}")
    usd = "unknown" if result.cost.usd is None else f"${result.cost.usd:.4f}"
    kind = "estimated" if result.cost.estimated else "reported"
    console.print(f"provider {result.provider}  model {result.model}  latency {result.latency_s:.2f}s  "
                  f"cost {usd} ({kind}){'  [cached]' if result.cached else ''}")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if result.job_id:
        console.print(f"job {result.job_id}")


def print_job(job: Job, out: Path) -> None:
    from rich.console import Console

    Console(soft_wrap=True).print(f"job {job.id}  status [bold]{job.status}[/]  provider {job.provider}")
    if job.result is not None:
        print_result(job.result, out)
    elif job.error:
        Console(soft_wrap=True).print(f"[red]{job.error.get('message', job.error)}[/]")
