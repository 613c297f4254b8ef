"""``dockd alerts list|ack``: what needs a person, and who has seen it."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.alerts import rows as core
from dockd.cli.common import Format, app_of, render

app = typer.Typer(help="Alerts that need a person.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include acknowledged alerts.")] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Open alerts (exit 0 even when there are some; scripts read --format json).

    Times are station time: in the table and CSV as ``2026-03-15 06:30``, in JSON as
    ISO 8601 with the station's offset.

    A repeated problem (e.g. many damaged files in one dock session) is one alert:
    ``occurrences`` says how many times it came, ``last_at`` when it last came.
    """
    state = app_of(ctx)
    with state.ledger.read() as s:
        tz = state.config.station.tz
        listed = core.list_alerts(s, include_acknowledged=all_)
        rows = [core.alert_dict(a, tz) for a in listed]
    render(
        rows,
        fmt,
        columns=None
        if fmt is not Format.table
        else [
            "id",
            "at",
            "severity",
            "kind",
            "subject",
            "message",
            "occurrences",
            "last_at",
            "acknowledged_by",
        ],
    )


@app.command("ack")
def ack(
    ctx: typer.Context,
    alert_ids: Annotated[list[int], typer.Argument(help="Alert id(s).")],
) -> None:
    """Acknowledge alerts: they leave the open list; the audit trail keeps who and when."""
    state = app_of(ctx)
    who = state.account().login
    with state.ledger.session() as s:
        for alert_id in alert_ids:
            core.acknowledge(
                s, alert_id, by=who, clock=state.clock, station=state.config.station.id
            )
    typer.echo(f"acknowledged {len(alert_ids)} alert(s) as {who}")
