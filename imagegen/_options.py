"""The keyword options of ``generate``, ``edit``, ``submit``, ``estimate`` and ``stream``, typed.

They are ``TypedDict``s used as ``**options: Unpack[...]``, so editors complete ``size=``,
``aspect_ratio=``, ``n=`` and type checkers reject a wrong type, while the methods keep
one keyword-only signature. Every key is optional; an unset key means "the provider's
default". ``ImageRequest`` validates the values at run time either way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeAlias, TypedDict

from ._models import Image, InputImage

__all__ = ["ImageInput", "ImageOptions", "RequestOptions"]

#: An input image as callers give it: bytes, a file path, an ``http(s)://`` URL, or an image object.
ImageInput: TypeAlias = bytes | str | os.PathLike[str] | Image | InputImage


class ImageOptions(TypedDict, total=False):
    """Options every call takes (``edit`` takes ``images`` and ``mask`` as its own arguments)."""

    #: A configured provider, a ``"provider/model"`` id or a route; unset: the default route.
    provider: str | None
    model: str | None
    aspect_ratio: str | None
    #: A size the model lists, e.g. ``"1K"``, ``"2K"``, ``"4K"``.
    size: str | None
    #: Images wanted; more than a provider makes per call is split into several calls.
    n: int
    seed: int | None
    output_format: str | None
    webhook_url: str | None
    #: Provider-specific options the model declares (``imagegen providers`` lists them).
    options: dict[str, Any]
    #: False: neither read nor write the cache for this call.
    cache: bool
    #: Seconds for the whole call, retries and fallbacks included.
    timeout: float | None
    #: Names one logical request: a retry with the same key never pays twice.
    idempotency_key: str | None


class RequestOptions(ImageOptions, total=False):
    """``ImageOptions`` plus reference images (and a mask) for ``generate``, ``submit``, ``stream``."""

    images: ImageInput | Sequence[ImageInput] | None
    mask: ImageInput | None
