"""``dockd recordings retime``: correct recording times, audited (see evidence/retime.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.cases import refresh_by_case
from dockd.cli.common import Format, app_of, parse_time, render
from dockd.evidence import retime as core
from dockd.ledger.models import FileState

app = typer.Typer(help="Recordings: correct what the recorder got wrong.", no_args_is_help=True)


@app.command("retime")
def retime(
    ctx: typer.Context,
    file_ids: Annotated[list[int] | None, typer.Argument(help="File ids.")] = None,
    session: Annotated[
        int | None, typer.Option("--session", help="Every file of this dock session.")
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="A device's files recorded in --from/--until.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="With --device: recorded at or after.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="With --device: before.")] = None,
    offset: Annotated[
        str | None, typer.Option("--offset", help="Shift by e.g. +8h, -1d2h, +08:00.")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="One file: its correct start (station zone).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "",
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Correct recording times by an offset, or one file to a time, with a reason.

    Retention (counted from the corrected time), day views and reports follow; each
    file gets a file.retime audit event with the old and new times. The stored file
    stays where it is.
    """
    state = app_of(ctx)
    cfg = state.config
    sel = core.Selection(
        file_ids=tuple(file_ids or ()),
        session_id=session,
        device=device,
        window_from=parse_time(from_, cfg),
        window_until=parse_time(until, cfg),
    )
    with state.ledger.session() as s:
        done = core.retime(
            s,
            cfg,
            core.select_files(s, sel),
            offset=core.parse_offset(offset) if offset is not None else None,
            to=parse_time(to, cfg),
            reason=reason,
            at=state.clock.now(),
            actor=state.account().login,
        )
    refresh_by_case(state)
    tz = cfg.station.tz
    rows = [
        {
            "file": r.file_id,
            "was": r.old_start.astimezone(tz).isoformat(),
            "now": r.new_start.astimezone(tz).isoformat(),
        }
        for r in done
    ]
    render(rows, fmt, title=f"{len(done)} recording time(s) corrected")
    for r in done:
        if r.state == FileState.TRASHED:
            until = r.expires_at.astimezone(tz).isoformat() if r.expires_at else "a case closes"
            typer.echo(
                f"dockd: file {r.file_id} is in the trash; its corrected time keeps it until "
                f"{until}: `dockd trash restore {r.file_id} --reason ...` brings it back",
                err=True,
            )
