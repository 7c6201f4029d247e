"""Edit sessions from the shell: ``imagegen generate --session new``, ``imagegen edit --session ID``
and ``imagegen session ID``.

Every command is its own process: the session lives in the job store between them, so
``imagegen edit --session gemini:session-... "now add snow"`` continues the conversation a
previous command started, with every earlier turn sent back as the provider answered it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .._errors import ImageGenError
from . import ConfigOpt, JsonOpt, app, fail, make_client
from ._output import emit, print_result, result_payload

NEW = "new"


def run_turn(config: Path | None, session_ref: str, operation: str, prompt: str, images: list[Path],
             fields: dict[str, Any], out: Path, as_json: bool) -> None:
    """One turn of session ``session_ref`` (``new`` starts one), printed like generate/edit."""
    try:
        with make_client(config) as client:
            provider = fields.pop("provider", None)
            if session_ref == NEW:
                session = client.session(provider)
            else:
                session = client.session(id=session_ref)
                if provider is not None:
                    fields["provider"] = provider  # checked against the session's own
            if operation == "edit":
                result = session.edit(prompt, images=[str(p) for p in images] or None, **fields)
            else:
                result = session.generate(prompt, **fields)
            about = _about(session)
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    if as_json:
        emit({**result_payload(result, out), "session": about})
        return
    print_result(result, out)
    typer.echo(f"session {about['id']}  turn {about['turn']}  ({about['mode']}; ${about['cost_usd']:.4f} so far)"
               f"\ncontinue: imagegen edit --session {about['id']} \"...\"")


def _about(session: Any) -> dict[str, Any]:
    turns = session.turns
    return {"id": session.id, "turn": turns[-1].index if turns else None, "turns": len(turns),
            "mode": session.mode, "provider": session.provider, "model": session.model,
            "cost_usd": session.cost.usd or 0.0}


@app.command("session")
def show_session(session_id: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show an edit session's turns: prompt, outcome, job and cost of each."""
    try:
        with make_client(config) as client:
            session = client.session(id=session_id)
            about, turns = _about(session), session.turns
    except ImageGenError as exc:
        raise fail(exc, as_json) from None
    rows = [{"turn": t.index, "operation": t.operation, "prompt": t.prompt, "status": t.status, "job_id": t.job_id,
             "images": t.images, "cost_usd": t.cost.usd, "error": (t.error or {}).get("message")} for t in turns]
    if as_json:
        emit({**about, "turns": rows})
        return
    # Plain-text cells (a prompt is user text, never markup); job ids whole.
    from ._output import print_table, table

    columns = ("turn", "status", "prompt", "images", "cost_usd", "job_id")
    cells = [[row[c] if c != "prompt" or len(str(row[c])) <= 40 else str(row[c])[:39] + "…" for c in columns]
             for row in rows]
    print_table(table(f"session {about['id']} ({about['provider']}/{about['model']}, {about['mode']})", columns,
                      cells, keep=("job_id",), right=("turn", "images", "cost_usd")))
