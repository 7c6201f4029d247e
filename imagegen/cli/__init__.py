"""The ``imagegen`` command line (typer + rich).

Every command takes ``--json`` and then prints exactly one JSON object. Exit codes:
0 success, 2 invalid request or config, 3 provider error, 4 budget refused, 5 storage error
(the job store, ledger or charge journal cannot be used; nothing was paid for).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import (
    BudgetExceededError,
    ConfigurationError,
    ImageGenError,
    InvalidRequestError,
    JobNotFoundError,
    StorageError,
)
from ._output import emit, job_payload, print_job, print_result, result_payload

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One interface over many image-generation services.")

EXIT_OK, EXIT_INVALID, EXIT_PROVIDER, EXIT_BUDGET, EXIT_STORAGE = 0, 2, 3, 4, 5

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="Config file (TOML).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Directory the images are written to.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", "-p",
                                                    help="Provider, provider/model or route.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model id.")]
RatioOpt = Annotated[str | None, typer.Option("--aspect-ratio", "-r", help="e.g. 16:9")]
SizeOpt = Annotated[str | None, typer.Option("--size", "-s", help="e.g. 1K, 2K, 4K")]
NOpt = Annotated[int, typer.Option("--n", "-n", help="Number of images.")]
SeedOpt = Annotated[int | None, typer.Option("--seed")]
FormatOpt = Annotated[str | None, typer.Option("--output-format", help="png, jpeg or webp")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", help="Provider option KEY=VALUE (VALUE parsed as JSON when it can be).")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", help="Deadline in seconds.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Ask for fresh output.")]
SessionOpt = Annotated[str | None, typer.Option(
    "--session", help="A turn of edit session ID (\"new\" starts one and prints its id); see `imagegen session`.")]


def exit_code_for(error: ImageGenError) -> int:
    if isinstance(error, BudgetExceededError):
        return EXIT_BUDGET
    if isinstance(error, StorageError):
        return EXIT_STORAGE
    if isinstance(error, (InvalidRequestError, ConfigurationError, JobNotFoundError)):
        return EXIT_INVALID
    return EXIT_PROVIDER


def fail(error: ImageGenError, as_json: bool) -> typer.Exit:
    if as_json:
        emit({"error": error.to_dict()})
    else:
        typer.secho(f"{type(error).__name__}: {error}", fg=typer.colors.RED, err=True)
    return typer.Exit(exit_code_for(error))


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise InvalidRequestError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


def make_client(config: Path | None) -> Any:
    from .. import Client

    return Client(config)


def _request_fields(provider: str | None, model: str | None, aspect_ratio: str | None, size: str | None,
                    n: int, seed: int | None, output_format: str | None, option: list[str] | None,
                    timeout: float | None, no_cache: bool) -> dict[str, Any]:
    fields = {"provider": provider, "model": model, "aspect_ratio": aspect_ratio, "size": size, "n": n,
              "seed": seed, "output_format": output_format, "timeout": timeout,
              "options": parse_options(option), "cache": not no_cache}
    return {k: v for k, v in fields.items() if v is not None}


@app.command()
def generate(prompt: str, provider: ProviderOpt = None, model: ModelOpt = None,
             aspect_ratio: RatioOpt = None, size: SizeOpt = None, n: NOpt = 1, seed: SeedOpt = None,
             output_format: FormatOpt = None, option: OptionOpt = None, timeout: TimeoutOpt = None,
             no_cache: NoCacheOpt = False, out: OutOpt = Path("."), as_json: JsonOpt = False,
             config: ConfigOpt = None, session: SessionOpt = None) -> None:
    """Generate images from a text prompt (or as a turn of an edit session)."""
    try:
        fields = _request_fields(provider, model, aspect_ratio, size, n, seed, output_format, option,
                                 timeout, no_cache)
        if session is not None:
            from ._sessions import run_turn

            return run_turn(config, session, "generate", prompt, [], fields, out, as_json)
        with make_client(config) as client:
            result = client.generate(prompt, **fields)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    _show_result(result, out, as_json)


@app.command()
def edit(prompt: str,
         image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="Input image (repeatable).")] = None,
         mask: Annotated[Path | None, typer.Option("--mask", help="Mask image.")] = None,
         blend: Annotated[bool, typer.Option("--blend", help="Blend the input images.")] = False,
         provider: ProviderOpt = None, model: ModelOpt = None, aspect_ratio: RatioOpt = None,
         size: SizeOpt = None, n: NOpt = 1, seed: SeedOpt = None, output_format: FormatOpt = None,
         option: OptionOpt = None, timeout: TimeoutOpt = None, no_cache: NoCacheOpt = False,
         out: OutOpt = Path("."), as_json: JsonOpt = False, config: ConfigOpt = None,
         session: SessionOpt = None) -> None:
    """Edit or combine input images as the prompt says (or continue an edit session)."""
    try:
        fields = _request_fields(provider, model, aspect_ratio, size, n, seed, output_format, option,
                                 timeout, no_cache)
        if blend:
            fields["options"] = {**fields["options"], "blend": True}
        if session is not None:
            from ._sessions import run_turn

            return run_turn(config, session, "edit", prompt, list(image or []), fields, out, as_json)
        if not image:
            raise InvalidRequestError("edit needs an input image: --image PATH (or --session ID to continue a session)")
        with make_client(config) as client:
            result = client.edit(prompt, images=list(image), mask=mask, **fields)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    _show_result(result, out, as_json)


@app.command()
def status(job_id: str, out: OutOpt = Path("."), as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show where a job stands (images are written when it has finished)."""
    try:
        with make_client(config) as client:
            job = client.status(job_id)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit(job_payload(job, out))
    else:
        print_job(job, out)


@app.command()
def wait(job_id: str, timeout: Annotated[float, typer.Option("--timeout")] = 120.0, out: OutOpt = Path("."),
         as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Wait for a job to finish and write its images."""
    try:
        with make_client(config) as client:
            result = client.wait(job_id, timeout=timeout)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    _show_result(result, out, as_json)


@app.command()
def estimate(prompt: Annotated[str | None, typer.Argument()] = None, provider: ProviderOpt = None,
             model: ModelOpt = None, aspect_ratio: RatioOpt = None, size: SizeOpt = None, n: NOpt = 1,
             option: OptionOpt = None,
             prompts: Annotated[Path | None, typer.Option("--prompts", help="A batch: one prompt per line.")] = None,
             vendor_batch: Annotated[bool, typer.Option(
                 "--vendor-batch", help="The vendor batch price next to the standard one.")] = False,
             as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Estimate the cost of a request, or of a whole batch, from the price book (no network call)."""
    from .._models import ImageRequest

    try:
        fields = _request_fields(provider, model, aspect_ratio, size, n, None, None, option, None, False)
        if (prompt is None) == (prompts is None):
            raise InvalidRequestError("give a PROMPT or --prompts FILE (not both)")
        if vendor_batch:
            from ._vendor_batch import estimate_vendor_batch

            return estimate_vendor_batch(prompt, prompts, fields, as_json=as_json, config=config)
        with make_client(config) as client:
            if prompts is not None:
                from ._batch import read_prompts

                batch = [ImageRequest.build(prompt=p, **fields) for p in read_prompts(prompts)]
                cost = client.estimate_many(batch)
            else:
                cost = client.estimate(prompt, **fields)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    payload: dict[str, Any] = {"cost": {"usd": cost.usd, "credits": cost.credits, "estimated": cost.estimated}}
    if prompts is not None:
        payload["breakdown"] = cost.breakdown
    if as_json:
        emit(payload)
    else:
        usd = "unknown" if cost.usd is None else f"${cost.usd:.4f}"
        typer.echo(f"estimated cost: {usd}" + (f" ({cost.credits:g} credits)" if cost.credits else ""))


def _show_result(result: Any, out: Path, as_json: bool) -> None:
    from .._vendor_batch import BatchResult

    try:
        if as_json:
            payload = result_payload(result, out)
            if isinstance(result, BatchResult):  # a vendor batch's wait: every member's outcome too
                payload["members"] = [m.model_dump(mode="json", exclude={"result", "reservation"})
                                      for m in result.members]
            emit(payload)
        else:
            print_result(result, out)
    except StorageError as exc:  # the images could not be written: the paid job is named in the error
        raise fail(exc, as_json) from None


def _register_more() -> None:
    from . import (  # noqa: F401  (batch, jobs, cache, cost, providers, emulate, demo, worker, batch verbs, session, stream)
        _batch,
        _bench,
        _cost,
        _extra,
        _fleet,
        _sessions,
        _stream,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _register_more()
    from ._fleet import route_batch_verb

    try:
        app(args=route_batch_verb(sys.argv[1:] if argv is None else argv), prog_name="imagegen")
    except ImageGenError as exc:  # a command that did not catch its own error
        typer.secho(f"{type(exc).__name__}: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exit_code_for(exc))
