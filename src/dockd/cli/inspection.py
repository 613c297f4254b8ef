"""``dockd inspection record|list``: the inspection register 检查台账 (R16).

The inspector is the account running the command (:mod:`dockd.evidence.inspections`);
the scheduled duties check reminds when none is recorded within ``[inspection]
every_months``.
"""

from __future__ import annotations

from datetime import date as date_
from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, render
from dockd.errors import UsageError
from dockd.evidence import inspections

app = typer.Typer(help="The inspection register: record an inspection, list them.")


def _day(value: str | None, option: str) -> date_ | None:
    if value is None:
        return None
    try:
        return date_.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date; use e.g. 2026-03-15") from None


def _words(value: str | None) -> list[str]:
    return [w.strip() for w in (value or "").split(",") if w.strip()]


@app.command("record")
def record(
    ctx: typer.Context,
    findings: Annotated[str, typer.Option("--findings", help="What the inspection found.")],
    date: Annotated[
        str | None, typer.Option("--date", help="The inspection's date (default: today).")
    ] = None,
    devices: Annotated[
        str | None, typer.Option("--devices", help="Devices checked: DV-0001,DV-0002.")
    ] = None,
    files: Annotated[str | None, typer.Option("--files", help="File ids checked: 12,15.")] = None,
    follow_up: Annotated[
        str | None, typer.Option("--follow-up", help="What is to be done about it.")
    ] = None,
) -> None:
    """Record an inspection: its date, devices and files checked, findings, follow-up."""
    state = app_of(ctx)
    cfg = state.config
    account = state.account()
    now = state.clock.now()
    on = _day(date, "--date") or now.astimezone(cfg.station.tz).date()
    try:
        ids = [int(f) for f in _words(files)]
    except ValueError:
        raise UsageError(f"--files {files!r}: file ids separated by commas, e.g. 12,15") from None
    with state.ledger.session() as s:
        row = inspections.record(
            s,
            on=on,
            devices=_words(devices),
            files=ids,
            findings=findings,
            follow_up=follow_up,
            actor=account,
            at=now,
            station=cfg.station.id,
            tz=cfg.station.tz,
        )
        number = row.id
    typer.echo(f"inspection #{number} of {on.isoformat()} recorded by {account.login}")


@app.command("list")
def list_(
    ctx: typer.Context,
    from_: Annotated[str | None, typer.Option("--from", help="From this date.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Through this date.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The inspection register, oldest first."""
    state = app_of(ctx)
    with state.ledger.read() as s:
        rows = inspections.register_rows(
            s, state.config.station.tz, since=_day(from_, "--from"), until=_day(to, "--to")
        )
    render(rows, fmt, columns=inspections.COLUMNS, title="inspection register")
