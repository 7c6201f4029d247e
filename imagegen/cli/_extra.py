"""CLI commands about providers themselves: ``providers``, ``emulate`` and the offline ``demo``."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from .._errors import ConfigurationError, ImageGenError
from .._plugins import registry
from . import ConfigOpt, JsonOpt, NoCacheOpt, OptionOpt, OutOpt, app, fail, make_client, parse_options
from ._output import emit, result_payload


def _price_text(spec: Any) -> str:
    price = spec.price
    if price is None:
        return "-"
    usd = price.image_usd(spec.default_size)
    return "-" if usd is None else f"${usd:.4f}/img ({price.as_of})"


@app.command()
def providers(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List installed providers, their models, capabilities and prices."""
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
    from rich.console import Console
    from rich.table import Table

    table = Table(title="imagegen providers")
    for column in ("provider", "model", "sizes", "aspect ratios", "refs", "mask", "async", "price"):
        table.add_column(column)
    for name, spec in rows:
        ratios = spec.aspect_ratios
        table.add_row(name, spec.id, ", ".join(spec.sizes) or "-",
                      f"{len(ratios)} ({', '.join(ratios[:3])}...)" if len(ratios) > 3 else ", ".join(ratios) or "-",
                      str(spec.max_reference_images), "yes" if spec.supports_mask else "no",
                      "yes" if spec.async_jobs else "no", _price_text(spec))
    Console().print(table)


def _emulator_for(provider: str, **kwargs: Any) -> Any:
    cls = registry.provider_class(provider)
    if not cls.emulator:
        raise ConfigurationError(f"provider {provider!r} ships no emulator")
    module, _, factory = cls.emulator.partition(":")
    return getattr(importlib.import_module(module), factory)(**kwargs)


@app.command()
def emulate(provider: str,
            port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8701,
            host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
            faults: Annotated[str | None, typer.Option(
                "--faults", help='Fault plan, e.g. "rate_limit=0.2,server_error=0.1,seed=7".')] = None,
            time_scale: Annotated[float | None, typer.Option(
                "--time-scale", help="Multiply the emulator's latencies (0.01 = 100x faster).")] = None,
            latency: Annotated[float | None, typer.Option(
                "--latency", help="Answer every generation in this many seconds (replaces the default model).")] = None,
            option: OptionOpt = None) -> None:
    """Run a provider's emulator on a local port (for tests, benchmarks and demos).

    ``--option KEY=VALUE`` passes emulator options, e.g. ``--option mode=async`` for
    nanobanana2 or ``--option dialect=scripts`` for wireflow.
    """
    from ..testing import FaultPlan, LatencyModel, run_forever

    if time_scale is not None:
        os.environ["IMAGEGEN_EMULATOR_TIME_SCALE"] = str(time_scale)
    try:
        extra = parse_options(option)
        if latency is not None:
            extra["latency"] = LatencyModel(base=latency)
        emulator = _emulator_for(provider, faults=FaultPlan.parse(faults) if faults else None, **extra)
    except ImageGenError as exc:
        raise fail(exc, False) from None
    except (TypeError, ValueError) as exc:
        typer.secho(f"bad emulator option: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{provider} emulator on http://{host}:{port}  (Ctrl-C to stop)")
    run_forever(emulator, host=host, port=port)


@app.command()
def demo(provider: Annotated[str, typer.Option("--provider", "-p")] = "gemini",
         out: OutOpt = Path("imagegen-demo"), no_cache: NoCacheOpt = False, as_json: JsonOpt = False) -> None:
    """Generate and then edit an image offline, against a provider's built-in emulator."""
    from .. import Client
    from ..testing import serve

    if out.exists() and not out.is_dir():
        typer.secho(f"--out {out} is a file; give a directory", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    out.mkdir(parents=True, exist_ok=True)
    try:
        emulator = _emulator_for(provider)
        with serve(emulator) as server:
            config = {"providers": {provider: {"base_url": server.base_url, "api_key": "demo-key"}},
                      "jobs": {"backend": "memory"}}
            with Client(config) as client:
                made = client.generate("a coastal villa at golden hour", provider=provider, cache=not no_cache)
                first = made.images[0].save(out)
                edited = client.edit("make the roof blue", images=[first], provider=provider, cache=not no_cache)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({"generate": result_payload(made, out), "edit": result_payload(edited, out)})
        return
    for label, result in (("generate", made), ("edit", edited)):
        image = result.images[0]
        path = image.save(out)
        usd = "unknown" if result.cost.usd is None else f"${result.cost.usd:.4f}"
        cached = "  (from the cache: run it with --no-cache for a fresh call)" if result.cached else ""
        typer.echo(f"{label:8} {path}  {result.provider}/{result.model}  {image.width}x{image.height} "
                   f"{image.mime_type}  {result.latency_s:.2f}s  {usd}{cached}")
