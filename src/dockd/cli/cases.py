"""``dockd cases import|list|close|reopen|links``: cases from the agency's case system,
their end, and the per-case view of each day."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from dockd.cli.common import App, Format, app_of, parse_time, render
from dockd.evidence import bycase, casefiling, caseimport
from dockd.evidence import cases as core
from dockd.reports.base import iso

Fmt = Annotated[Format, typer.Option("--format", "-f")]

app = typer.Typer(
    help="Cases from the case system; footage is tagged by them.", no_args_is_help=True
)


def refresh_by_case(state: App) -> None:
    """Bring the per-case tree in line with the tags just committed; problems become alerts."""
    with state.ledger.session() as s:
        result = bycase.rebuild(s, state.config)
    for problem in result.errors:
        typer.echo(f"dockd: warning: per-case view: {problem}", err=True)
    if result.errors:
        state.alerts.raise_alert(
            "bycase.failed",
            str(bycase.by_case_root(state.config)),
            f"the per-case view could not be fully rebuilt ({len(result.errors)} problem(s)): "
            f"{result.errors[0]}; fix it and run `dockd cases links`",
            severity="warning",
            details={"errors": result.errors[:20]},
        )


@app.command("import")
def import_(
    ctx: typer.Context,
    csv_file: Annotated[
        Path, typer.Argument(help="CSV export of the case system.", dir_okay=False)
    ],
) -> None:
    """Load cases (case_number, officer_badge, start, end, cause, party[, category]) and tag
    the footage of that officer recorded in each case's window. Footage docked later is
    tagged the same way when it arrives."""
    state = app_of(ctx)
    cfg = state.config
    text = caseimport.read_csv_text(csv_file)
    rows = caseimport.parse_cases_csv(text, cfg.station.tz, source=str(csv_file))
    with state.ledger.session() as s:
        result = caseimport.import_cases(
            s,
            rows,
            at=state.clock.now(),
            actor=state.account().login,
            station=cfg.station.id,
            source=csv_file.name,
        )
    typer.echo(
        f"{len(rows)} case line(s): {result.created} new, {result.updated} updated, "
        f"{result.unchanged} unchanged; {len(result.tags.tagged)} file(s) tagged"
    )
    for file_id, has, wanted in result.tags.conflicts:
        typer.echo(
            f"dockd: warning: file {file_id} is already tagged with case {has}, not {wanted}; "
            "left as it is (`dockd tag` to change it)",
            err=True,
        )
    for badge in sorted(set(result.unknown_badges)):
        typer.echo(
            f"dockd: warning: badge {badge} is not a registered officer; its cases tag nothing "
            "until footage carrying that badge arrives",
            err=True,
        )
    refresh_by_case(state)


@app.command("list")
def list_(
    ctx: typer.Context,
    case: Annotated[str | None, typer.Option("--case", help="Only this case number.")] = None,
    fmt: Fmt = Format.table,
) -> None:
    """Imported cases and how many stored files carry each case number."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.session() as s:
        counts = core.case_file_counts(s)
        rows = [
            {
                "case": c.case_number,
                "officer": c.officer_badge,
                "starts_at": iso(c.starts_at, tz),
                "ends_at": iso(c.ends_at, tz),
                "cause": c.cause,
                "party": c.party,
                "category": c.category,
                "closed_at": iso(c.closed_at, tz),
                "files": counts.get(c.case_number, 0),
                "imported_at": iso(c.imported_at, tz),
                "imported_by": c.imported_by,
            }
            for c in core.list_cases(s, case_number=case)
        ]
    render(rows, fmt, title="cases")


Reason = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]


@app.command("close")
def close(
    ctx: typer.Context,
    case: Annotated[str, typer.Argument(help="Case number.")],
    reason: Reason,
    at: Annotated[
        str | None, typer.Option("--at", help="When it ended (station zone; default now).")
    ] = None,
) -> None:
    """The case has ended (结案): its evidence is kept [retention] after_close_days more,
    and its footage must be filed within [archive] case_filing_days."""
    state = app_of(ctx)
    now = state.clock.now()
    when = parse_time(at, state.config) or now
    with state.ledger.session() as s:
        files = casefiling.close_case(
            s, state.config, case, when=when, reason=reason, at=now, actor=state.account().login
        )
    due = when + timedelta(days=state.config.archive.case_filing_days)
    typer.echo(
        f"case {case} closed on {when.astimezone(state.config.station.tz):%Y-%m-%d %H:%M}; "
        f"its {files} stored file(s) are to be filed by "
        f"{due.astimezone(state.config.station.tz):%Y-%m-%d} (dockd report case-filing)"
    )


@app.command("reopen")
def reopen(
    ctx: typer.Context, case: Annotated[str, typer.Argument(help="Case number.")], reason: Reason
) -> None:
    """The case is open again: its evidence is kept until it is closed anew."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        files = casefiling.reopen_case(
            s, state.config, case, reason=reason, at=state.clock.now(), actor=state.account().login
        )
    typer.echo(f"case {case} reopened; {files} stored file(s) kept until it closes")


@app.command("links")
def links(ctx: typer.Context) -> None:
    """Rebuild the per-case view (read-only hard links by case and day) from the ledger."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        result = bycase.rebuild(s, state.config)
    root = bycase.by_case_root(state.config)
    typer.echo(f"{root}: {result.linked} linked, {result.kept} unchanged, {result.removed} removed")
    for problem in result.errors:
        typer.echo(f"dockd: {problem}", err=True)
    if result.errors:
        raise typer.Exit(1)
