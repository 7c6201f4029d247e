"""``imagegen batch PROMPTS --vendor-batch``: the prompts as one vendor batch (Gemini's Batch API,
half price, up to 24 h) instead of concurrent calls.

Resumable like the standard batch: each prompt's key comes from the prompts file and its line, so
running the same command again skips prompts already written as succeeded to ``batch.jsonl``,
waits for a batch still under way instead of sending its prompts again, and sends only the
prompts that failed (or were never sent) as a new batch. ``--no-wait`` submits and returns; a
later run (or ``imagegen wait BATCH_ID``) collects the results.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import typer

from .._errors import ImageGenError
from . import EXIT_PROVIDER, fail, make_client
from ._output import cost_payload, emit, job_payload, save_images, usd_text
from ._prompts import PromptLine, read_prompt_file

__all__ = ["batch_payload", "estimate_vendor_batch", "member_payloads", "print_batch", "print_members",
           "run_vendor_batch", "vendor_batch_key"]


def vendor_batch_key(prompts_file: Path, index: int, prompt: str) -> str:
    """A prompt's member key; distinct from the standard batch's, so the two never meet."""
    digest = hashlib.sha256(f"{prompts_file.resolve()}\n{index}\n{prompt}".encode()).hexdigest()
    return f"vbatch-{digest[:24]}"


def run_vendor_batch(prompts: Path, lines: list[PromptLine], done: dict[int, Any], fields: dict[str, Any], out: Path,
                     results: Path, *, wait: bool, timeout: float, as_json: bool, config: Path | None) -> None:
    """Submit (or resume) the vendor batch for the prompts not yet done, then write its results."""
    pending = {vendor_batch_key(prompts, i, line.prompt): (i, line) for i, line in enumerate(lines) if i not in done}
    try:
        with make_client(config) as client:
            live, to_send = _sort_out(client, pending)
            estimate = None
            if to_send:
                requests = [pending[k][1].request({**fields, "idempotency_key": k}) for k in to_send]
                estimate = client.estimate_batch(requests)
                if not as_json:
                    typer.echo(_estimate_line(estimate))
                batch = client.submit_batch(requests)
                live.append(batch.id)
                if not as_json:
                    typer.echo(f"submitted batch {batch.id} ({len(requests)} prompt(s), {batch.delivery})")
            counts = {"succeeded": 0, "failed": 0, "pending": 0}
            for batch_id in live if wait else []:
                _collect(client, client.wait(batch_id, timeout=timeout), pending, out, results, counts)
            if not wait:
                counts["pending"] = len(pending)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    summary = {"total": len(lines), "skipped": len(done), **counts, "batches": live, "results_file": str(results)}
    if estimate is not None:
        summary["estimate"] = {"batch_usd": estimate.batch.usd, "standard_usd": estimate.standard.usd,
                               "delivery": estimate.delivery}
    if as_json:
        emit(summary)
    else:
        typer.echo(f"{counts['succeeded']} succeeded, {counts['failed']} failed, {summary['skipped']} already done"
                   + (f", batch(es) {', '.join(live)} under way: run again or imagegen wait ID" if not wait else "")
                   + f"; results in {results}")
    if counts["failed"]:
        raise typer.Exit(EXIT_PROVIDER)


def _sort_out(client: Any, pending: dict[str, tuple[int, PromptLine]]) -> tuple[list[str], list[str]]:
    """Batches still under way for some of these prompts, and the prompts to send now."""
    live: list[str] = []
    to_send = []
    for key in pending:
        earlier = client.jobs.find(key)
        parent = (earlier.metadata.get("vendor_batch_member") or {}).get("batch_id") if earlier is not None else None
        if earlier is not None and parent and earlier.status in ("queued", "running", "succeeded"):
            if parent not in live:
                live.append(parent)
        else:
            to_send.append(key)
    return live, to_send


def _estimate_line(estimate: Any) -> str:
    batch = "unknown" if estimate.batch.usd is None else f"${estimate.batch.usd:.4f}"
    standard = "unknown" if estimate.standard.usd is None else f"${estimate.standard.usd:.4f}"
    return (f"estimated {batch} as a vendor batch ({estimate.discount:.0%} of {standard} as standard calls), "
            f"{estimate.members} request(s) sent {estimate.delivery}")


def _collect(client: Any, result: Any, pending: dict[str, tuple[int, PromptLine]], out: Path, results: Path,
             counts: dict[str, int]) -> None:
    with results.open("a", encoding="utf-8") as sink:
        for member in result.members:
            if member.key not in pending:
                continue  # a prompt of another run of this batch, already written there
            index, prompt_line = pending[member.key]
            line: dict[str, Any] = {"index": index, "prompt": prompt_line.prompt, "job_id": member.job_id,
                                    "batch_id": result.batch_id}
            if member.result is not None:
                line.update(status="succeeded", provider=member.result.provider, cost_usd=member.result.cost.usd,
                            images=save_images(member.result, out))
            else:
                line.update(status="failed", error=member.error)
            sink.write(json.dumps(line) + "\n")
            counts[line["status"]] += 1


def estimate_vendor_batch(prompt: str | None, prompts: Path | None, fields: dict[str, Any], *, as_json: bool,
                          config: Path | None) -> None:
    """``imagegen estimate --vendor-batch``: the batch price next to the standard price."""
    from .._models import ImageRequest

    try:
        requests = ([line.request(fields) for line in read_prompt_file(prompts)] if prompts is not None
                    else [ImageRequest.build(prompt=prompt or "", **fields)])
        with make_client(config) as client:
            estimate = client.estimate_batch(requests)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({"cost": {"usd": estimate.batch.usd, "credits": None, "estimated": True},
              "standard": {"usd": estimate.standard.usd}, "discount": estimate.discount,
              "savings_usd": estimate.savings_usd, "members": estimate.members, "delivery": estimate.delivery,
              "provider": estimate.provider, "model": estimate.model})
    else:
        typer.echo(_estimate_line(estimate))


# -- status / wait of a batch ----------------------------------------------------------------

def member_payloads(members: list[Any]) -> list[dict[str, Any]]:
    """Every member of a batch: its job id, key, state, cost (estimated until the batch ends)
    and error."""
    return [{"job_id": m.job_id, "key": m.key, "index": m.index, "status": m.status,
             "cost": cost_payload(m.cost) if m.cost is not None else None, "error": m.error} for m in members]


def batch_payload(batch: Any, out: Path) -> dict[str, Any]:
    """``imagegen status BATCH_ID --json``: the job, the batch's state, and its members."""
    estimate = batch.estimate
    return {**job_payload(batch, out),
            "batch": {"state": batch.state, "vendor_state": batch.vendor_state, "delivery": batch.delivery,
                      "settled": batch.settled, "last_error": batch.last_error,
                      "estimate": None if estimate is None else {"batch_usd": estimate.batch.usd,
                                                                 "standard_usd": estimate.standard.usd}},
            "members": member_payloads(batch.members), "warnings": batch.warnings}


def print_batch(batch: Any) -> None:
    counts = {status: sum(1 for m in batch.members if m.status == status)
              for status in ("succeeded", "failed", "cancelled")}
    under_way = len(batch.members) - sum(counts.values())
    typer.echo(f"batch {batch.id}  state {batch.state} ({batch.vendor_state or '-'})  {batch.delivery}  "
               f"{len(batch.members)} member(s): {counts['succeeded']} succeeded, {counts['failed']} failed, "
               f"{counts['cancelled']} cancelled, {under_way} under way")
    if batch.last_error:
        typer.echo(f"last look at the vendor failed: {batch.last_error}")
    print_members(batch.members)
    for warning in batch.warnings:
        typer.echo(f"warning: {warning}")


def print_members(members: list[Any]) -> None:
    """One line per member: id, state, cost, and the error of one that failed."""
    for row in member_payloads(members):
        cost = row["cost"]
        price = "-" if cost is None else usd_text(cost["usd"]) + (" (estimated)" if cost["estimated"] else "")
        error = row["error"] or {}
        why = f"  {error.get('type', 'error')}: {error.get('message', '')}" if error else ""
        typer.echo(f"  {row['job_id']}  {row['status']}  {price}{why}")
