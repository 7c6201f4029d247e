"""The ``imagegen`` command line (typer).

Every command takes ``--json`` and then prints exactly one JSON object. Exit codes:
0 success, 2 invalid request or config, 3 provider error, 4 budget refused, 5 storage error
(the job store, ledger or charge journal cannot be used; nothing was paid for), 130 interrupted.

Start-up is part of the interface: ``imagegen --help``, ``--version`` and argument errors
must not import the client. So the command modules (``COMMAND_MODULES``) import only typer
and this package at module level; everything else (the client, pydantic models, rich,
plugins) is imported inside the command that needs it. ``tests/cli/test_startup.py`` holds
every command module to that. Adding a command: a module here that decorates functions with
``@app.command()``, and its name in ``COMMAND_MODULES``.

Help is click's plain formatter (``rich_markup_mode=None``): typer's rich help imports rich's
markdown and traceback machinery, ~100 ms, more than the whole start-up budget of the CLI.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._errors import (
    BudgetExceededError,
    ConfigurationError,
    ImageGenError,
    InvalidRequestError,
    JobNotFoundError,
    StorageError,
)
from ._output import emit, job_payload, print_error, print_job, print_result, result_payload, show_events

if TYPE_CHECKING:  # pragma: no cover
    from .._sync import Client

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None)

EXIT_OK, EXIT_INVALID, EXIT_PROVIDER, EXIT_BUDGET, EXIT_STORAGE, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130

#: The modules that add commands to ``app`` (imported by ``main``; each must import lightly).
COMMAND_MODULES = ("_batch", "_cost", "_extra", "_bench", "_fleet", "_sessions", "_stream")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", metavar="FILE", help="Config file (TOML).")]
OutOpt = Annotated[Path, typer.Option(
    "--out", metavar="DIR|FILE",
    help="Directory the images are written to, or a file name such as out/fox.png (the image is "
         "converted to the format its extension names; with --n 2 or more: fox-1.png, fox-2.png, ...).")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", "-p", metavar="NAME",
                                                    help="Provider, provider/model or route.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", metavar="MODEL", help="Model id.")]
RatioOpt = Annotated[str | None, typer.Option("--aspect-ratio", "-r", metavar="W:H", help="e.g. 16:9")]
SizeOpt = Annotated[str | None, typer.Option("--size", "-s", metavar="SIZE", help="e.g. 1K, 2K, 4K")]
NOpt = Annotated[int, typer.Option("--n", "-n", metavar="N", help="Number of images.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", metavar="N", help="Random seed, where supported.")]
FormatOpt = Annotated[str | None, typer.Option("--output-format", metavar="FORMAT", help="png, jpeg or webp")]
OptionOpt = Annotated[list[str] | None, typer.Option(
    "--option", "-o", metavar="KEY=VALUE",
    help="A provider option (repeatable); VALUE is read as JSON when it can be.")]
TimeoutOpt = Annotated[float | None, typer.Option("--timeout", metavar="SECONDS", help="Deadline in seconds.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Ask for fresh output.")]
SessionOpt = Annotated[str | None, typer.Option(
    "--session", metavar="ID", help="A turn of edit session ID (\"new\" starts one and prints its id); see "
                                    "imagegen session --help.")]
PromptArg = Annotated[str, typer.Argument(metavar="PROMPT", help="What to draw (or change).")]


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"imagegen {__version__} (Python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_version,
                                                help="Print the version and exit.")] = False) -> None:
    """One interface over many image-generation services.

    Start offline with no API key: imagegen demo. Configuration: imagegen.toml in this
    directory, $IMAGEGEN_CONFIG, or the user config directory (see the README).
    """


def exit_code_for(error: ImageGenError) -> int:
    if isinstance(error, BudgetExceededError):
        return EXIT_BUDGET
    if isinstance(error, StorageError):
        return EXIT_STORAGE
    if isinstance(error, (InvalidRequestError, ConfigurationError, JobNotFoundError)):
        return EXIT_INVALID
    return EXIT_PROVIDER


def fail(error: ImageGenError, as_json: bool) -> typer.Exit:
    """Print ``error`` (one JSON object, or a message with what to do next) and the exit to raise."""
    if as_json:
        emit({"error": error.to_dict()})
    else:
        print_error(error)
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


def make_client(config: Path | None) -> Client:
    from .._sync import Client

    return Client(config)


def _request_fields(provider: str | None, model: str | None, aspect_ratio: str | None, size: str | None,
                    n: int, seed: int | None, output_format: str | None, option: list[str] | None,
                    timeout: float | None, no_cache: bool) -> dict[str, Any]:
    fields = {"provider": provider, "model": model, "aspect_ratio": aspect_ratio, "size": size, "n": n,
              "seed": seed, "output_format": output_format, "timeout": timeout,
              "options": parse_options(option), "cache": not no_cache}
    return {k: v for k, v in fields.items() if v is not None}


@app.command()
def generate(prompt: PromptArg, provider: ProviderOpt = None, model: ModelOpt = None,
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
        with make_client(config) as client, show_events(f"generating with {provider or 'the default route'}"):
            result = client.generate(prompt, **fields)
        _show_result(result, out, as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None


@app.command()
def edit(prompt: PromptArg,
         image: Annotated[list[Path] | None, typer.Option("--image", "-i", metavar="FILE",
                                                          help="Input image (repeatable).")] = None,
         mask: Annotated[Path | None, typer.Option("--mask", metavar="FILE", help="Mask image.")] = None,
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
        with make_client(config) as client, show_events(f"editing with {provider or 'the default route'}"):
            result = client.edit(prompt, images=list(image), mask=mask, **fields)
        _show_result(result, out, as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None


JobArg = Annotated[str, typer.Argument(metavar="JOB_ID", help="A job id, <provider>:<native id>.")]


@app.command()
def status(job_id: JobArg, out: OutOpt = Path("."), as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show where a job stands; write its images once it has finished."""
    try:
        with make_client(config) as client:
            job = client.status(job_id)
        if hasattr(job, "members"):  # a vendor batch: every member's state, cost and error too
            from ._vendor_batch import batch_payload, print_batch

            return emit(batch_payload(job, out)) if as_json else print_batch(job)
        if as_json:
            emit(job_payload(job, out))
        else:
            print_job(job, out)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None


@app.command()
def wait(job_id: JobArg,
         timeout: Annotated[float, typer.Option("--timeout", metavar="SECONDS", help="Give up after this long.")]
         = 120.0, out: OutOpt = Path("."), as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Wait for a job to finish and write its images."""
    try:
        with make_client(config) as client, show_events(f"waiting for {job_id}"):
            result = client.wait(job_id, timeout=timeout)
        _show_result(result, out, as_json)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None


@app.command()
def estimate(prompt: Annotated[str | None, typer.Argument(metavar="PROMPT", help="What to draw.")] = None,
             provider: ProviderOpt = None, model: ModelOpt = None, aspect_ratio: RatioOpt = None,
             size: SizeOpt = None, n: NOpt = 1, option: OptionOpt = None,
             prompts: Annotated[Path | None, typer.Option(
                 "--prompts", metavar="FILE", help="A prompt file (one request per line; see "
                 "'imagegen batch --help'): the cost of the whole batch.")] = None,
             vendor_batch: Annotated[bool, typer.Option(
                 "--vendor-batch", help="The vendor batch price next to the standard one.")] = False,
             as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Estimate the cost of a request or a batch (no network call).

    It says which provider and model it priced, and the price book's date and source.
    """
    from ._prompts import read_prompt_file

    try:
        fields = _request_fields(provider, model, aspect_ratio, size, n, None, None, option, None, False)
        if (prompt is None) == (prompts is None):
            raise InvalidRequestError("give a PROMPT or --prompts FILE (not both)")
        if vendor_batch:
            from ._vendor_batch import estimate_vendor_batch

            return estimate_vendor_batch(prompt, prompts, fields, as_json=as_json, config=config)
        lines = read_prompt_file(prompts) if prompts is not None else []
        with make_client(config) as client:
            batch = [line.request(fields) for line in lines] if lines else [prompt or ""]
            cost = client.estimate_many(batch, **({} if lines else fields))
            priced = [_priced(client, key, usd) for key, usd in cost.breakdown.items()]
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    payload: dict[str, Any] = {"cost": {"usd": cost.usd, "credits": cost.credits, "estimated": cost.estimated},
                               "priced": priced}
    if prompts is not None:
        payload["requests"] = len(lines)
    if as_json:
        emit(payload)
        return
    from ._output import usd_text

    credits = f" ({cost.credits:g} credits)" if cost.credits else ""
    what = f"{len(lines)} requests" if prompts is not None else f"{n} image(s)"
    typer.echo(f"estimated cost: {usd_text(cost.usd)}{credits} for {what}")
    for row in priced:
        typer.echo(f"  {row['provider']}/{row['model']}: {usd_text(row['usd'])}  "
                   f"(price book of {row['as_of']}: {row['source']})")


def _priced(client: Any, key: str, usd: float) -> dict[str, Any]:
    """What one provider/model of an estimate was priced with."""
    name, _, model_id = key.partition("/")
    price = client.provider(name).model_spec(model_id).price
    return {"provider": name, "model": model_id, "usd": usd,
            "as_of": str(price.as_of) if price else None, "source": price.source if price else None}


def _show_result(result: Any, out: Path, as_json: bool) -> None:
    from .._vendor_batch import BatchResult

    try:
        if as_json:
            payload = result_payload(result, out)
            if isinstance(result, BatchResult):  # a vendor batch's wait: every member's outcome too
                from ._vendor_batch import member_payloads

                payload["members"] = member_payloads(result.members)
            emit(payload)
        else:
            print_result(result, out)
            if isinstance(result, BatchResult):
                from ._vendor_batch import print_members

                print_members(result.members)
    except StorageError as exc:  # the images could not be written: the paid job is named in the error
        raise fail(exc, as_json) from None


def _tidy_help(command: Any) -> None:
    """Help that reads like a man page: ``--n N``, ``PROMPT``; flags show no type.

    typer >= 0.20 prints a type tag after every parameter (``<bool>`` even on flags, ``<str>``
    after an argument's name) unless it has a metavar. Options of ours name theirs; this gives
    the rest (commands other modules add) one, and drops the tag after arguments.
    """
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = param.metavar or (param.name or "value").upper()
            param.display_type_rich = lambda ctx: None
        elif not getattr(param, "is_flag", False) and not getattr(param, "count", False) and param.metavar is None:
            names = {"int": "N", "integer": "N", "float": "NUMBER", "path": "PATH"}
            param.metavar = names.get(_type_name(param), "TEXT")
    for sub in (getattr(command, "commands", None) or {}).values():
        _tidy_help(sub)


def _type_name(param: Any) -> str:
    """The value type of an option: typer >= 0.20 has ``bare_type()``, click's options a ``type``."""
    if hasattr(param, "bare_type"):
        return str(param.bare_type()).lower()
    return str(getattr(getattr(param, "type", None), "name", "") or "").lower()


def command() -> Any:
    """The whole command tree (every command module loaded) as a click command, help tidied."""
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    tree = typer.main.get_command(app)
    _tidy_help(tree)
    return tree


def _register_more() -> None:
    """Load every command module onto ``app`` (tests drive ``app`` with typer's CliRunner)."""
    command()


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from ._fleet import route_batch_verb

    try:
        command()(args=route_batch_verb(sys.argv[1:] if argv is None else argv), prog_name="imagegen")
    except ImageGenError as exc:  # a command that did not catch its own error
        print_error(exc)
        sys.exit(exit_code_for(exc))
