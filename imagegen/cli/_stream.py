"""``imagegen stream``: generate (or, with ``--image``, edit) and write each preview as it arrives.

Previews (partial images) are written as ``partial-<index>.<ext>`` in ``--out`` the moment they
arrive; the final result is written and reported like ``generate``'s (it went through the cache,
budget, job store and ledger). With ``--json`` one JSON object per line: ``{"partial": {...}}``
for each preview, then the result object. Providers that cannot stream write the result alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .._errors import ImageGenError
from . import (
    ConfigOpt,
    FormatOpt,
    JsonOpt,
    ModelOpt,
    NoCacheOpt,
    OptionOpt,
    OutOpt,
    ProviderOpt,
    RatioOpt,
    SizeOpt,
    TimeoutOpt,
    _request_fields,
    _show_result,
    app,
    fail,
    make_client,
)
from ._output import emit


@app.command()
def stream(prompt: str,
           partial_images: Annotated[int, typer.Option("--partial-images", help="Previews to stream (1-3).")] = 2,
           image: Annotated[list[Path] | None, typer.Option("--image", "-i", help="Input image: edit it.")] = None,
           mask: Annotated[Path | None, typer.Option("--mask", help="Mask (PNG with alpha) for the edit.")] = None,
           provider: ProviderOpt = None, model: ModelOpt = None, aspect_ratio: RatioOpt = None,
           size: SizeOpt = None, output_format: FormatOpt = None, option: OptionOpt = None,
           timeout: TimeoutOpt = None, no_cache: NoCacheOpt = False, out: OutOpt = Path("."),
           as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Generate or edit, writing partial images as they stream in, then the final image."""
    try:
        fields = _request_fields(provider, model, aspect_ratio, size, 1, None, output_format, option, timeout, no_cache)
        if image:
            fields.update(images=list(image), mask=mask)
        elif mask is not None:
            raise typer.BadParameter("--mask needs --image")
        with make_client(config) as client:
            result = None
            for item in client.stream(prompt, partial_images=partial_images, **fields):
                if hasattr(item, "images"):
                    result = item
                    continue
                out.mkdir(parents=True, exist_ok=True)
                path = item.image.save(out / f"partial-{item.index}.{item.image.extension}")
                if as_json:
                    emit({"partial": {"index": item.index, "path": str(path), "width": item.image.width,
                                      "height": item.image.height}})
                else:
                    typer.echo(f"preview {item.index}: {path}")
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    assert result is not None
    _show_result(result, out, as_json)
