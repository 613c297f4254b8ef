"""``dockd ledger query|sessions|migrate|backup|restore|grant-readonly``: read the ledger,
keep its schema current, back it up and put a backup back, open it to auditors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, parse_time, render
from dockd.ingest.session import counts
from dockd.ledger import backup as backups
from dockd.ledger import db, queries, readonly
from dockd.runtime import LOCK_NAME, runtime_dir

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
                "clock_offset_s": d.clock_offset_s,
                "quarantined": d.quarantined,
                "source": d.source,
            }
            for d in queries.recent_sessions(s, limit)
        ]
    render(rows, fmt, title="dock sessions")


@app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Bring the ledger schema to this version of dockd (back it up first: dockd ledger backup)."""
    state = app_of(ctx)
    engine = db.make_engine(state.config.ledger.url, group=state.config.ledger.group)
    try:
        before, after = db.migrate(engine)
    finally:
        # As every close: the SQLite -wal/-shm stay, for the [ledger] group's readers.
        db.Ledger(engine).close()
    if before == after:
        typer.echo(f"ledger schema already at {after}")
    else:
        typer.echo(f"ledger schema migrated from {before or 'empty'} to {after}")


@app.command("optimize")
def optimize(ctx: typer.Context) -> None:
    """Keep queries on the right index (run after large imports, or weekly): VACUUM
    (ANALYZE) on PostgreSQL, which the reports' index-only scans need; ANALYZE on SQLite."""
    state = app_of(ctx)
    db.optimize(state.ledger.engine)
    vacuumed = state.ledger.engine.dialect.name == "postgresql"
    typer.echo(
        "ledger vacuumed and statistics refreshed" if vacuumed else "ledger statistics refreshed"
    )


Force = Annotated[bool, typer.Option("--force", help="Replace an existing file.")]


@app.command("backup")
def backup(
    ctx: typer.Context,
    dest: Annotated[
        Path, typer.Argument(help="The backup file, or a directory to write a named one in.")
    ],
    force: Force = False,
    fmt: Fmt = Format.table,
) -> None:
    """Copy the ledger while dockd runs (SQLite backup API, or pg_dump), verify the copy
    as `dockd audit verify` does, and name the file, its size and its last audit hash."""
    state = app_of(ctx)
    cfg = state.config
    result = backups.backup(
        cfg.ledger.url,
        dest,
        station=cfg.station.id,
        at=state.clock.now(),
        force=force,
        group=cfg.ledger.group,
    )
    if fmt is not Format.table:
        render([result.as_dict()], fmt)
        return
    c = result.checked
    typer.echo(f"ledger backed up to {result.path} ({result.size_bytes} bytes)")
    typer.echo(f"verified {c.events} event(s) and {c.files} file row(s): {c.how}")
    typer.echo(f"last audit hash: {c.head}")


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup_file: Annotated[Path, typer.Argument(metavar="BACKUP", help="An SQLite backup.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the existing ledger (kept beside it).")
    ] = False,
    fmt: Fmt = Format.table,
) -> None:
    """Put a verified SQLite backup in place of the ledger, with `dockd run` stopped; the
    replaced ledger is kept beside it as <ledger>.before-restore-<time>."""
    state = app_of(ctx)
    cfg = state.config
    result = backups.restore(
        cfg.ledger.url,
        backup_file,
        daemon_lock=runtime_dir() / LOCK_NAME,
        at=state.clock.now(),
        force=force,
        group=cfg.ledger.group,
    )
    if fmt is not Format.table:
        render([result.as_dict()], fmt)
        return
    typer.echo(f"restored {result.backup} into the ledger {result.ledger}")
    if result.kept is not None:
        typer.echo(f"the replaced ledger is kept as {result.kept}")
    typer.echo(f"verified {result.checked.events} event(s); last audit hash: {result.checked.head}")
    typer.echo("now run `dockd audit verify` and `dockd sweep fixity --all`, then start dockd")


@app.command("grant-readonly")
def grant_readonly(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(metavar="ROLE", help="The PostgreSQL role to create.")],
    login: Annotated[
        bool,
        typer.Option(
            "--login", help="Let the role log in (default NOLOGIN: a group role to add people to)."
        ),
    ] = False,
    fmt: Fmt = Format.table,
) -> None:
    """PostgreSQL: let ROLE read the documented v_* views and nothing else (audited; safe to
    run again). An SQLite ledger is read by its [ledger] group instead."""
    state = app_of(ctx)
    result = readonly.grant_readonly(
        state.ledger,
        role,
        login=login,
        at=state.clock.now(),
        station=state.config.station.id,
        actor=state.account().login,
    )
    if fmt is not Format.table:
        render([result.as_dict()], fmt)
        return
    made = "created" if result.created else "already existed"
    how = "may log in" if result.login else "NOLOGIN: grant it to login roles"
    typer.echo(f"role {result.role} {made} ({how})")
    typer.echo(
        f"may read {len(result.views)} view(s) in schema {result.schema}: "
        + ", ".join(result.views)
    )
    if result.revoked_tables:
        typer.echo("took back its privileges on: " + ", ".join(result.revoked_tables))
