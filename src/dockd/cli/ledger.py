"""``dockd ledger query|sessions|migrate``: read the ledger, keep its schema current."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, parse_time, render
from dockd.ingest.session import counts
from dockd.ledger import db, queries

app = typer.Typer(help="Query the ledger and manage its schema.", no_args_is_help=True)
Fmt = Annotated[Format, typer.Option("--format", "-f")]

TABLE_COLUMNS = [
    "id",
    "device",
    "officer",
    "case",
    "recorded_at",
    "duration_s",
    "size_bytes",
    "store_path",
    "flags",
]


@app.command("query")
def query(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option(help="Device number.")] = None,
    officer: Annotated[str | None, typer.Option(help="Badge number.")] = None,
    case: Annotated[str | None, typer.Option(help="Case number.")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="Recorded at or after.")] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="Recorded before (a date: through).")
    ] = None,
    include_removed: Annotated[
        bool, typer.Option("--include-removed", help="Also trashed/purged files.")
    ] = False,
    station: Annotated[
        str | None, typer.Option(help="Only this station's files (default: every station).")
    ] = None,
    fmt: Fmt = Format.table,
) -> None:
    """Recordings matching all the given filters, oldest first."""
    state = app_of(ctx)
    cfg = state.config
    f = queries.FileFilter(
        device=device,
        officer=officer,
        case=case,
        recorded_from=parse_time(from_, cfg),
        recorded_to=parse_time(to, cfg, end=True),
        include_removed=include_removed,
        station=station,
    )
    with state.ledger.read() as s:
        rows = queries.find_files(s, f, cfg.station.tz)
    render(
        rows,
        fmt,
        columns=TABLE_COLUMNS if fmt is Format.table else list(queries.FILE_FIELDS),
        title="recordings",
    )


@app.command("sessions")
def sessions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    fmt: Fmt = Format.table,
) -> None:
    """Recent dock sessions and their outcome."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = [
            {
                "id": d.id,
                "device": d.device_ref,
                "started_at": d.started_at.astimezone(tz).isoformat(),
                "ended_at": d.ended_at.astimezone(tz).isoformat() if d.ended_at else None,
                "outcome": d.outcome,
                **counts(d),
                "quarantined": d.quarantined,
                "source": d.source,
            }
            for d in queries.recent_sessions(s, limit)
        ]
    render(rows, fmt, title="dock sessions")


@app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Bring the ledger schema to this version of dockd (back the ledger up first)."""
    state = app_of(ctx)
    engine = db.make_engine(state.config.ledger.url, group=state.config.ledger.group)
    try:
        before, after = db.migrate(engine)
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"ledger schema already at {after}")
    else:
        typer.echo(f"ledger schema migrated from {before or 'empty'} to {after}")


@app.command("optimize")
def optimize(ctx: typer.Context) -> None:
    """Refresh the query planner's statistics (run after large imports, or weekly)."""
    state = app_of(ctx)
    db.optimize(state.ledger.engine)
    typer.echo("ledger statistics refreshed")
