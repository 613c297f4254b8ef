"""``dockd audit verify|head|history``: check the tamper-evident trail, print its head."""

from __future__ import annotations

import json
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from dockd.cli.common import Format, app_of, render
from dockd.errors import DockdError, NotFound
from dockd.ledger import audit
from dockd.ledger.models import Recording
from dockd.reports.base import iso

app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


class AuditBroken(DockdError):
    """The audit trail or a file row does not check out."""

    exit_code = 65  # EX_DATAERR


def _head_line(h: audit.ChainHead, tz: ZoneInfo) -> str:
    at = iso(h.at, tz) or "-"
    return f"chain head: {h.hash}  events: {h.count}  last event: #{h.last_id or 0} at {at}"


@app.command("head")
def head(
    ctx: typer.Context,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Print the chain head (last hash, event count) to write into the paper register."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.session() as s:
        h = audit.head(s)
    if fmt is Format.table:
        typer.echo(_head_line(h, tz))
        return
    render(
        [{"hash": h.hash, "events": h.count, "last_event": h.last_id, "at": iso(h.at, tz)}],
        fmt,
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    against: Annotated[
        str | None,
        typer.Option("--against", help="A head written down earlier: it must still be there."),
    ] = None,
) -> None:
    """Recompute every hash and link of the chain, replay every file's events against its
    row; exit non-zero naming the first broken event. Prints the chain head."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.session() as s:
        result = audit.verify(s, against=against)
    for warning in result.warnings:
        typer.echo(f"dockd: warning: {warning}", err=True)
    typer.echo(f"checked {result.events_checked} event(s) and {result.files_checked} file row(s)")
    typer.echo(_head_line(result.head, tz))
    if result.ok:
        typer.echo("audit trail OK")
        return
    for problem in result.problems[1:20]:
        typer.echo(f"  also: {problem.message}", err=True)
    more = len(result.problems) - 20
    if more > 0:
        typer.echo(f"  ... and {more} more problem(s)", err=True)
    first = result.problems[0]
    raise AuditBroken(
        f"audit trail BROKEN ({len(result.problems)} problem(s)); first: {first.message}"
    )


@app.command("history")
def history(
    ctx: typer.Context,
    file_id: Annotated[int, typer.Option("--file", help="File id.")],
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Every event about one file, oldest first: ingest, tags, holds, views, exports, deletion."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.session() as s:
        exists = s.get(Recording, file_id) is not None
        events = audit.history(s, "file", file_id)
    if not exists and not events:
        raise NotFound(f"no file with id {file_id} and no events about it")
    rows = []
    for ev in events:
        details = json.loads(ev.details)
        rows.append(
            {
                "event": ev.id,
                "at": iso(ev.at, tz),
                "action": ev.action,
                "actor": ev.actor,
                "set": details.pop("set", None) if fmt is not Format.table else None,
                "details": details if fmt is not Format.table else _short(details),
                "hash": ev.hash,
            }
        )
    render(
        rows,
        fmt,
        columns=["event", "at", "action", "actor", "details"]
        if fmt is Format.table
        else ["event", "at", "action", "actor", "set", "details", "hash"],
        title=f"history of file {file_id}",
    )


def _short(details: dict[str, object]) -> str:
    changed = details.pop("set", None)
    parts = []
    if isinstance(changed, dict):
        parts.append("set " + ", ".join(f"{k}={v}" for k, v in changed.items()))
    parts.extend(f"{k}={v}" for k, v in details.items() if v not in (None, "", [], {}))
    text = "; ".join(parts)
    return text if len(text) <= 160 else text[:157] + "..."
