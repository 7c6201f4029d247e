"""Prompt files: the one format ``imagegen batch``, ``imagegen estimate --prompts`` and
``imagegen record`` read, parsed here and nowhere else.

One request per line:

- a line of text is a prompt: ``a red fox in the snow``;
- a line starting with ``{`` is a JSON object of request fields: ``prompt`` and any other
  field of ``ImageRequest`` (``provider``, ``model``, ``size``, ``aspect_ratio``, ``n``,
  ``seed``, ``output_format``, ``options``, ``timeout``, ``images``, ``mask``, ...), e.g.
  ``{"prompt": "make the sky purple", "images": ["villa.png"], "size": "2K"}``. Image paths
  are relative to the prompt file (URLs are passed on); ``images`` makes the line an edit;
- blank lines and lines starting with ``#`` are skipped.

Options given on the command line (``--provider``, ``--size``, ...) fill in what a line does
not set; a line's own fields win. Every line is checked before anything is sent, and an error
names the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import InvalidRequestError

if TYPE_CHECKING:  # pragma: no cover
    from .._models import ImageRequest

__all__ = ["PromptLine", "read_prompt_file"]


@dataclass(frozen=True)
class PromptLine:
    """One request of a prompt file: where it is (``path:number``) and the fields it sets."""

    path: Path
    number: int
    fields: dict[str, Any]

    @property
    def prompt(self) -> str:
        return str(self.fields.get("prompt", ""))

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def request(self, defaults: dict[str, Any] | None = None) -> ImageRequest:
        """The request this line asks for, with ``defaults`` (command-line options) under it."""
        from .._models import ImageRequest

        fields = {**(defaults or {}), **self.fields}
        if fields.get("images") and "operation" not in self.fields:
            fields["operation"] = "edit"
        try:
            return ImageRequest.build(**fields)
        except InvalidRequestError as exc:
            raise type(exc)(f"{self.where}: {exc}") from None


def _resolve(value: Any, base: Path) -> Any:
    """A relative path is relative to the prompt file; URLs and absolute paths stay as they are."""
    if isinstance(value, str) and "://" not in value:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())
    return value


def _parse(path: Path, number: int, text: str) -> PromptLine:
    if not text.startswith("{"):
        return PromptLine(path, number, {"prompt": text})
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(f"{path}:{number}: a line starting with '{{' must be a JSON object "
                                  f"of request fields ({exc})") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("prompt"), str):
        raise InvalidRequestError(f"{path}:{number}: a JSON line needs a \"prompt\" string, e.g. "
                                  '{"prompt": "a red fox", "size": "2K"}')
    images = fields.get("images")
    if images is not None:
        fields["images"] = [_resolve(v, path.parent) for v in (images if isinstance(images, list) else [images])]
    if fields.get("mask") is not None:
        fields["mask"] = _resolve(fields["mask"], path.parent)
    return PromptLine(path, number, fields)


def read_prompt_file(path: Path) -> list[PromptLine]:
    """Every request line of ``path`` (raises ``InvalidRequestError`` naming the file and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"cannot read the prompt file {path}: {exc}") from None
    lines = [_parse(path, number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InvalidRequestError(f"the prompt file {path} holds no prompts (one per line; # starts a comment)")
    return lines
