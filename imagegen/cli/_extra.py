"""CLI commands about providers themselves: ``providers``, ``emulate`` and the offline ``demo``."""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import ConfigurationError, ImageGenError
from . import ConfigOpt, JsonOpt, NoCacheOpt, OptionOpt, app, fail, make_client, parse_options
from ._output import emit, result_payload, usd_text


def _price_text(spec: Any) -> str:
    price = spec.price
    if price is None:
        return "price unknown"
    usd = price.image_usd(spec.default_size)
    return "price unknown" if usd is None else f"${usd:.4f} per image (price book of {price.as_of})"


@app.command()
def providers(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List providers, their models, capabilities and prices."""
    from .._plugins import registry

    try:
        classes = make_client(config).providers() if config else registry.providers()
        rows = [(name, spec) for name, cls in sorted(classes.items()) for spec in cls.models()]
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({"providers": [
            {"provider": name, "model": spec.id, "capabilities": spec.capabilities(),
             "price": spec.price.model_dump(mode="json") if spec.price else None} for name, spec in rows]})
        return
    for name, spec in rows:
        # Two lines a model, the provider/model id alone at the start of the first: whole at any width.
        typer.echo(f"{name}/{spec.id}  {_price_text(spec)}")
        ratios = spec.aspect_ratios
        shown = ", ".join(ratios[:3]) + (", ..." if len(ratios) > 3 else "")
        typer.echo(f"    sizes {','.join(spec.sizes) or '-'}; {len(ratios)} ratios ({shown}); "
                   f"{spec.max_reference_images} refs; mask {'yes' if spec.supports_mask else 'no'}; "
                   f"async {'yes' if spec.async_jobs else 'no'}")
    typer.echo("prices: per image at the model's default size; imagegen providers --json has every rate, "
               "with its source and date")


def _emulator_for(provider: str, **kwargs: Any) -> Any:
    from .._plugins import registry

    cls = registry.provider_class(provider)
    if not cls.emulator:
        raise ConfigurationError(f"provider {provider!r} ships no emulator")
    module, _, factory = cls.emulator.partition(":")
    return getattr(importlib.import_module(module), factory)(**kwargs)


@app.command()
def emulate(provider: Annotated[str, typer.Argument(metavar="PROVIDER", help="gemini, wireflow, nanobanana2, ...")],
            port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to listen on.")] = 8701,
            host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on.")] = "127.0.0.1",
            faults: Annotated[str | None, typer.Option(
                "--faults", metavar="PLAN", help='Fault plan, e.g. "rate_limit=0.2,server_error=0.1,seed=7".')] = None,
            time_scale: Annotated[float | None, typer.Option(
                "--time-scale", metavar="FACTOR",
                help="Multiply the emulator's latencies (0.01 = 100x faster).")] = None,
            latency: Annotated[float | None, typer.Option(
                "--latency", metavar="SECONDS",
                help="Answer every generation in this many seconds (replaces the default model).")] = None,
            option: OptionOpt = None) -> None:
    """Run a provider's emulator on a local port.

    For tests, benchmarks and demos.
    --option KEY=VALUE passes emulator options, e.g. --option mode=async for nanobanana2 or
    --option dialect=scripts for wireflow. Point a provider at it with base_url (a client
    whose providers all point at emulators keeps its jobs, ledger and cache apart from real ones).
    """
    from ..testing import FaultPlan, LatencyModel, run_forever

    if time_scale is not None:
        os.environ["IMAGEGEN_EMULATOR_TIME_SCALE"] = str(time_scale)
    try:
        extra = parse_options(option)
        if latency is not None:
            extra["latency"] = LatencyModel(base=latency)
        emulator = _emulator_for(provider, faults=FaultPlan.parse(faults) if faults else None, **extra)
        _check_free(host, port)
    except ImageGenError as exc:
        raise fail(exc, False) from None
    except (TypeError, ValueError) as exc:
        typer.secho(f"bad emulator option: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{provider} emulator on http://{host}:{port}  (Ctrl-C to stop)")
    run_forever(emulator, host=host, port=port)


def _check_free(host: str, port: int) -> None:
    """Fail before saying "emulator on ..." when the address is taken (as the server will bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            typer.secho(f"cannot listen on {host}:{port}: {exc.strerror or exc}; is another emulator running "
                        f"there? choose another --port", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None


def _demo_config(provider: str, base_url: str) -> dict[str, Any]:
    """The demo's own stores: ``<data dir>/demo`` and ``<cache dir>/demo``, never the user's."""
    from .._cache import default_cache_dir
    from .._jobstore import default_data_dir

    data = default_data_dir() / "demo"
    return {"providers": {provider: {"base_url": base_url, "api_key": "demo-key"}},
            "jobs": {"backend": "memory"}, "ledger": {"path": str(data / "ledger.sqlite3")},
            "cache": {"backend": "disk", "path": str(default_cache_dir() / "demo")}}


@app.command()
def demo(provider: Annotated[str, typer.Option("--provider", "-p", metavar="NAME",
                                               help="The provider whose emulator to run.")] = "gemini",
         out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Where the images go.")]
         = Path("imagegen-demo"),
         no_cache: NoCacheOpt = False, as_json: JsonOpt = False) -> None:
    """Generate, then edit, an image offline against an emulator.

    It runs a provider's built-in emulator in-process.
    The demo keeps its own ledger and cache (in demo/ under imagegen's data and cache
    directories): it never shows in imagegen cost or counts toward a budget.
    """
    from .._sync import Client
    from ..testing import serve

    if out.exists() and not out.is_dir():
        typer.secho(f"--out {out} is a file; give a directory", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        out.mkdir(parents=True, exist_ok=True)
        emulator = _emulator_for(provider)
        with serve(emulator) as server, Client(_demo_config(provider, server.base_url)) as client:
            made = client.generate("a coastal villa at golden hour", provider=provider, cache=not no_cache)
            first = made.images[0].save(out)
            edited = client.edit("make the roof blue", images=[first], provider=provider, cache=not no_cache)
        if as_json:
            emit({"generate": result_payload(made, out), "edit": result_payload(edited, out)})
            return
        for label, result in (("generate", made), ("edit", edited)):
            image = result.images[0]
            path = image.save(out)
            cached = "  (from the cache: run it with --no-cache for a fresh call)" if result.cached else ""
            typer.echo(f"{label:8} {path}  {result.provider}/{result.model}  {image.width}x{image.height} "
                       f"{image.mime_type}  {result.latency_s:.2f}s  {usd_text(result.cost.usd)}{cached}")
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
