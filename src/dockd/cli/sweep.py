"""``dockd sweep retention|archive|fixity|daily|duties|upcoming|report|runs``: run a sweep once.

On a terminal a retention, archive or fixity run draws a progress bar on stderr
(files, bytes, rate, ETA: :mod:`dockd.cli.progress`); never on a pipe or for JSON.

The same functions the daemon's scheduler calls, under the same one-at-a-time lock.
Ctrl-C (or SIGTERM) stops a sweep between two files; the run ends 'interrupted'.
Exit 1 when the sweep found something a person must look at (a missing or
modified file, a target that is unplugged or full, a file it could not move).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any, Protocol

import typer

from dockd.cli.common import App, Format, app_of, parse_time, render
from dockd.cli.progress import progress_for
from dockd.context import Context
from dockd.errors import UsageError
from dockd.reports.base import iso
from dockd.reports.daily import missed, run_daily_report
from dockd.reports.duties import run_duties
from dockd.reports.weekly import WEEK, week_ending, weekly_summary
from dockd.sweeps import filing, listings
from dockd.sweeps.archive import run_archive
from dockd.sweeps.fixity import run_fixity
from dockd.sweeps.retention import run_retention
from dockd.sweeps.runs import recent_runs

app = typer.Typer(help="Run retention, archive and fixity sweeps once.", no_args_is_help=True)

Fmt = Annotated[Format, typer.Option("--format", "-f")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Say what would be done; change nothing.")]


@contextlib.contextmanager
def _context(state: App, fmt: Format) -> Iterator[Context]:
    """A sweep context, acting as the account running it, whose stop event SIGINT/SIGTERM
    set (restored afterwards); on a terminal (not for JSON) it draws a progress bar."""
    sctx = state.context(state.account())
    with progress_for(json_output=fmt is Format.json) as progress:
        sctx = dataclasses.replace(sctx, progress=progress)
        with _stoppable(sctx):
            yield sctx


@contextlib.contextmanager
def _stoppable(sctx: Context) -> Iterator[None]:
    """SIGINT and SIGTERM set ``sctx.stop`` inside the block (the old handlers after)."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        typer.echo("stopping after the current file ...", err=True)
        sctx.stop.set()

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class _Run(Protocol):
    """What every sweep's report says about its run."""

    @property
    def run_id(self) -> int: ...

    @property
    def status(self) -> str: ...


def _show(
    fmt: Format,
    kind: str,
    report: _Run,
    head: dict[str, Any],
    key: str,
    rows: list[dict[str, Any]],
    columns: list[str],
) -> None:
    """A run's outcome: one JSON object (run, status, ``head``, the rows under ``key``),
    or a table of the rows."""
    if fmt is Format.json:
        render([{"run_id": report.run_id, "status": report.status, **head, key: rows}], fmt)
    else:
        render(rows, fmt, columns=columns, title=f"{kind} run {report.run_id}")


def _done(status: str, counts: dict[str, Any], problems: bool) -> None:
    typer.echo(f"{status}: " + json.dumps(counts, ensure_ascii=False), err=True)
    if problems:
        raise typer.Exit(1)


@app.command("retention")
def retention(ctx: typer.Context, dry_run: DryRun = False, fmt: Fmt = Format.table) -> None:
    """Trash expired, unheld files; purge the trash after its grace period."""
    state = app_of(ctx)
    with _context(state, fmt) as sctx:
        report = run_retention(sctx, dry_run=dry_run)
    rows = [i.as_dict() for i in report.items()]
    cols = ["file_id", "action", "store_path", "category", "rule", "note"]
    _show(fmt, "retention", report, report.counts(), "files", rows, cols)
    _done(report.status, report.counts(), bool(report.problems))


@app.command("archive")
def archive(ctx: typer.Context, dry_run: DryRun = False, fmt: Fmt = Format.table) -> None:
    """Copy held (and configured evidence) files to every archive target, verified."""
    state = app_of(ctx)
    if not state.config.archive.targets:
        typer.echo("no [[archive.targets]] configured: nothing to copy", err=True)
        if not dry_run:  # closed cases past their filing date are still told
            with _context(state, fmt) as sctx:
                filing.unfiled_cases(sctx)
        return
    with _context(state, fmt) as sctx:
        report = run_archive(sctx, dry_run=dry_run)
    rows = [i.as_dict() for i in report.items()]
    cols = ["target", "file_id", "status", "store_path", "path", "note"]
    _show(fmt, "archive", report, {"targets": report.counts()}, "files", rows, cols)
    if fmt is not Format.json:
        for t in report.targets:
            if t.status != "ok":
                typer.echo(f"target {t.name}: {t.status}: {t.note}", err=True)
    bad = any(
        t.status != "ok" or any(i.status == "failed" for i in t.items) for t in report.targets
    )
    _done(report.status, report.counts(), bad)


@app.command("fixity")
def fixity(
    ctx: typer.Context,
    dry_run: DryRun = False,
    all_: Annotated[bool, typer.Option("--all", help="Re-hash every stored file now.")] = False,
    fmt: Fmt = Format.table,
) -> None:
    """Re-hash this run's share of the store; name missing, modified and unexpected files."""
    state = app_of(ctx)
    with _context(state, fmt) as sctx:
        report = run_fixity(sctx, dry_run=dry_run, full=all_)
    rows = [f.as_dict() for f in report.findings]
    cols = ["kind", "path", "file_id", "expected", "found", "note"]
    archive = report.archive
    copy_rows = [f.as_dict() for f in archive.findings] if archive is not None else []
    head = {**report.counts(), **({"copies": copy_rows} if archive is not None else {})}
    _show(fmt, "fixity", report, head, "findings", rows, cols)
    if archive is not None and fmt is not Format.json:
        if copy_rows:
            copy_cols = ["target", "file_id", "status", "action", "path", "found", "note"]
            render(copy_rows, fmt, columns=copy_cols, title=f"archive copies, run {report.run_id}")
        for t in archive.targets:
            say = f"{t.note}" if t.status != "checked" else f"{t.due} due, {t.ok} ok"
            typer.echo(f"archive target {t.name}: {t.status}: {say}", err=True)
    bad = bool(report.problems) or bool(archive is not None and archive.problems)
    _done(report.status, report.counts(), bad)


@app.command("daily")
def daily(ctx: typer.Context, dry_run: DryRun = False, fmt: Fmt = Format.table) -> None:
    """The scheduled daily reconciliation, now: the last completed workday, a
    dock.missed alert per assigned device not docked (exit 1 if any)."""
    state = app_of(ctx)
    with _context(state, fmt) as sctx:
        result = run_daily_report(sctx, dry_run=dry_run)
    render(result.rows, fmt, columns=result.columns, title=f"{result.name}: {result.title}")
    if missed(result.rows):
        raise typer.Exit(1)


@app.command("duties")
def duties(ctx: typer.Context, dry_run: DryRun = False, fmt: Fmt = Format.table) -> None:
    """The scheduled duties check, now: gaps unexplained past [reports]
    explain_gaps_within_days, an inspection overdue (exit 1 if either)."""
    state = app_of(ctx)
    with _context(state, fmt) as sctx:
        result = run_duties(sctx, dry_run=dry_run)
    cols = ["device", "officer", "gap_from", "gap_to", "gap_minutes", "file_before", "file_after"]
    render(result.unexplained_gaps, fmt, columns=cols, title="gaps not explained in time")
    head = {k: v for k, v in result.as_dict().items() if k != "unexplained_gaps"}
    _done("ok", head, bool(result.unexplained_gaps) or result.inspection_overdue)


@app.command("upcoming")
def upcoming(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=0, help="How far ahead.")] = 30,
    fmt: Fmt = Format.table,
) -> None:
    """Deletions coming in the next N days: files to trash (or held), trash to purge."""
    state = app_of(ctx)
    sctx = state.context()
    render(listings.upcoming(sctx, days), fmt, title=f"deletions in the next {days} days")


@app.command("report")
def report(
    ctx: typer.Context,
    week_ending_: Annotated[
        str | None, typer.Option("--week-ending", help="Last day of the week (default: yesterday).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or json.")] = "text",
) -> None:
    """The weekly summary: ingested, late, deleted, held, archived, alerts."""
    if fmt not in ("text", "json"):
        raise UsageError(f"--format {fmt!r}: use text or json")
    state = app_of(ctx)
    cfg = state.config
    if week_ending_ is not None:
        end = parse_time(week_ending_, cfg, end=True)
        assert end is not None
        start = end - WEEK
    else:
        start, end = week_ending(cfg, state.clock.now())
    with state.ledger.read() as s:
        summary = weekly_summary(s, cfg, start=start, end=end)
    if fmt == "json":
        sys.stdout.write(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(summary.text())


@app.command("runs")
def runs(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    fmt: Fmt = Format.table,
) -> None:
    """Recent sweep runs and how they ended."""
    state = app_of(ctx)
    sctx = state.context()
    rows = [
        {
            "id": r.id,
            "kind": r.kind,
            "station": r.station,
            "started_at": iso(r.started_at, state.config.station.tz),
            "ended_at": iso(r.ended_at, state.config.station.tz),
            "status": r.status,
            "summary": r.summary,
        }
        for r in recent_runs(sctx, limit)
    ]
    render(rows, fmt, title="sweep runs")
