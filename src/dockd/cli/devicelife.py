"""``dockd devices custodian|service|dispose|history``: a recorder's life after it is
registered (who keeps it, what was done to it, when it was written off)."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, parse_time, render
from dockd.cli.registry import At, Device, Fmt, Reason, devices, reattributed, stamp
from dockd.ledger import devicelife

Reference = Annotated[str | None, typer.Option("--reference", help="Work order or ticket number.")]


@devices.command("custodian")
def devices_custodian(
    ctx: typer.Context,
    device: Device,
    login: Annotated[str, typer.Argument(help="The account answerable for the recorder.")],
    reason: Reason,
) -> None:
    """Name the person who keeps a recorder (定人管理): an account dockd knows."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        devicelife.set_custodian(
            s, device_number=device, login=login, reason=reason, **stamp(state)
        )
    typer.echo(f"device {device}: custodian {login}")


@devices.command("service")
def devices_service(
    ctx: typer.Context,
    device: Device,
    kind: Annotated[str, typer.Option("--kind", help="maintenance or repair.")],
    note: Annotated[str, typer.Option("--note", help="What was done.")],
    reference: Reference = None,
    at: At = None,
) -> None:
    """Enter maintenance or a repair in a recorder's service record (--at: when it was
    done; default now)."""
    state = app_of(ctx)
    made = stamp(state)
    when = parse_time(at, state.config) or made["at"]
    with state.ledger.session() as s:
        row = devicelife.record_service(
            s, device_number=device, kind=kind, when=when, note=note, reference=reference, **made
        )
        typer.echo(f"device {device}: {kind} entered (record {row.id})")


@devices.command("dispose")
def devices_dispose(
    ctx: typer.Context, device: Device, reason: Reason, reference: Reference = None, at: At = None
) -> None:
    """Write a recorder off for good (报废): out of service from --at (default now), its
    open assignment ended; if it is ever docked again it is taken and alerted."""
    state = app_of(ctx)
    made = stamp(state)
    when = parse_time(at, state.config) or made["at"]
    with state.ledger.session() as s:
        change = devicelife.dispose(
            s, device_number=device, when=when, reason=reason, reference=reference, **made
        )
        typer.echo(f"device {device} disposed of")
        if change.assignment is not None:
            typer.echo(f"ended its assignment to badge {change.assignment.officer.badge}")
    if change.assignment is not None:
        reattributed(change)


@devices.command("history")
def devices_history(ctx: typer.Context, device: Device, fmt: Fmt = Format.table) -> None:
    """Everything known of one recorder, in time order: registration, assignments,
    custodians, maintenance and repairs, retirement, loss or disposal."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = [
            {**e.as_row(), "at": e.at.astimezone(tz).isoformat(timespec="minutes")}
            for e in devicelife.history(s, device)
        ]
    render(rows, fmt, title=f"device {device}")


def register(app: typer.Typer) -> None:
    """Nothing of its own: its commands join ``dockd devices`` (made by cli.registry)."""
