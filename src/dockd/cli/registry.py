"""``dockd devices|officers|assign``: the registry of recorders and who holds them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypedDict

import typer
from typer.core import TyperGroup

from dockd.cli.common import App, Format, app_of, parse_time, render
from dockd.config.station import local_text
from dockd.errors import UsageError
from dockd.ledger import registry

devices = typer.Typer(help="Registered recorders.", no_args_is_help=True)
officers = typer.Typer(help="Officers who wear recorders.", no_args_is_help=True)

Fmt = Annotated[Format, typer.Option("--format", "-f")]
At = Annotated[
    str | None, typer.Option("--at", help="When (ISO date/time; station zone; default now).")
]
Device = Annotated[str, typer.Argument(help="Device number.")]
Reason = Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")]


class _Stamp(TypedDict):
    """When, where and by whom a registry change is made (for its audit event)."""

    at: datetime
    station: str
    actor: str


def stamp(state: App) -> _Stamp:
    return {
        "at": state.clock.now(),
        "station": state.config.station.id,
        "actor": state.account().login,
    }


@devices.command("add")
def devices_add(
    ctx: typer.Context,
    number: Annotated[str, typer.Argument(help="Device number, e.g. DV-0001.")],
    serial: Annotated[str | None, typer.Option(help="Serial number of the recorder.")] = None,
    fs_uuid: Annotated[str | None, typer.Option("--fs-uuid", help="Filesystem UUID.")] = None,
    fs_label: Annotated[str | None, typer.Option("--fs-label", help="Volume label.")] = None,
    brand: Annotated[str | None, typer.Option()] = None,
    model: Annotated[str | None, typer.Option()] = None,
    unit: Annotated[str | None, typer.Option(help="Unit (default: the station's).")] = None,
    in_service_since: Annotated[
        str | None,
        typer.Option(
            "--in-service-since",
            help="In use since (station zone): footage from then on is not doubted as "
            "predating the registration.",
        ),
    ] = None,
) -> None:
    """Register a recorder."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        dev = registry.add_device(
            s,
            number=number,
            serial=serial,
            fs_uuid=fs_uuid,
            fs_label=fs_label,
            brand=brand,
            model=model,
            unit=unit or state.config.station.unit,
            in_service_since=parse_time(in_service_since, state.config),
            **stamp(state),
        )
        typer.echo(f"registered device {dev.number}")


@devices.command("list")
def devices_list(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """All registered recorders with who holds each now."""
    state = app_of(ctx)
    now = state.clock.now()
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = []
        for d in registry.list_devices(s):
            holder = registry.officer_at(s, d.id, now)
            rows.append(
                {
                    "number": d.number,
                    "serial": d.serial,
                    "fs_uuid": d.fs_uuid,
                    "fs_label": d.fs_label,
                    "brand": d.brand,
                    "model": d.model,
                    "unit": d.unit,
                    "holder": holder.badge if holder else None,
                    "custodian": d.custodian,
                    "registered_at": d.registered_at.astimezone(tz).isoformat(),
                }
            )
    render(rows, fmt, title="devices")


@officers.command("add")
def officers_add(
    ctx: typer.Context,
    badge: Annotated[str, typer.Argument(help="Badge number.")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    unit: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Register an officer."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        off = registry.add_officer(
            s, badge=badge, name=name, unit=unit or state.config.station.unit, **stamp(state)
        )
        typer.echo(f"registered officer {off.badge} ({off.name})")


@officers.command("list")
def officers_list(ctx: typer.Context, fmt: Fmt = Format.table) -> None:
    """All registered officers."""
    state = app_of(ctx)
    with state.ledger.read() as s:
        rows = [
            {"badge": o.badge, "name": o.name, "unit": o.unit} for o in registry.list_officers(s)
        ]
    render(rows, fmt, title="officers")


class DefaultGroup(TyperGroup):
    """A group whose first word, when it names no command, belongs to its default one:
    ``dockd assign DEVICE BADGE --from T`` is ``dockd assign set DEVICE BADGE --from T``."""

    default = "set"

    # ctx: typer's own (vendored) click Context, which typer does not export by name
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default, *args]
        return super().parse_args(ctx, args)


assignments = typer.Typer(
    cls=DefaultGroup,
    help="Who holds which device when: `dockd assign DEVICE BADGE --from T` or "
    "`dockd assign end DEVICE`.",
    no_args_is_help=True,
)


def reattributed(change: registry.Change) -> None:
    typer.echo(f"{change.reattributed} file(s) re-attributed")


@assignments.command("set")
def assign(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Device number.")],
    badge: Annotated[str, typer.Argument(help="Badge number of the officer.")],
    from_: Annotated[str, typer.Option("--from", help="Start (ISO date/time; station zone).")],
    until: Annotated[str | None, typer.Option("--until", help="End (open when omitted).")] = None,
    close_previous: Annotated[
        bool,
        typer.Option(
            "--close-previous", help="End the device's open assignment at --from (audited)."
        ),
    ] = False,
) -> None:
    """Assign a device to an officer from a time (the default command).

    `dockd assign DEVICE BADGE --from T [--until T]`: the device's footage recorded
    in the window is re-attributed to the officer, each file audited.
    """
    state = app_of(ctx)
    cfg = state.config
    start = parse_time(from_, cfg)
    if start is None:
        raise UsageError("--from is required")
    with state.ledger.session() as s:
        change = registry.assign(
            s,
            device_number=device,
            badge=badge,
            valid_from=start,
            valid_until=parse_time(until, cfg),
            close_previous=close_previous,
            **stamp(state),
        )
        a, tz = change.assignment, cfg.station.tz
        assert a is not None
        if change.closed is not None:
            typer.echo(
                f"ended the assignment of device {device} to badge "
                f"{change.closed.officer.badge} at {local_text(start, tz)}"
            )
        end = local_text(a.valid_until, tz) if a.valid_until else "open"
        typer.echo(
            f"device {device} -> badge {badge} from {local_text(a.valid_from, tz)} until {end}"
        )
    reattributed(change)


@assignments.command("end")
def assign_end(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Device number.")],
    at: At = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
) -> None:
    """End the device's open assignment (now, or --at).

    Its footage recorded from then on is re-attributed, each file audited.
    """
    state = app_of(ctx)
    tz = state.config.station.tz
    made = stamp(state)
    when = parse_time(at, state.config) or made["at"]
    with state.ledger.session() as s:
        change = registry.end_assignment(s, device_number=device, when=when, reason=reason, **made)
        assert change.assignment is not None
        typer.echo(
            f"ended the assignment of device {device} to badge "
            f"{change.assignment.officer.badge} at {local_text(when, tz)}"
        )
    reattributed(change)


def _retire(ctx: typer.Context, device: str, kind: str, at: str | None, reason: str) -> None:
    state = app_of(ctx)
    made = stamp(state)
    when = parse_time(at, state.config) or made["at"]
    with state.ledger.session() as s:
        change = registry.retire_device(
            s, device_number=device, kind=kind, when=when, reason=reason, **made
        )
        typer.echo(
            f"device {device} marked {kind} from {local_text(when, state.config.station.tz)}"
        )
        if change.assignment is not None:
            typer.echo(f"ended its assignment to badge {change.assignment.officer.badge}")
    if change.assignment is not None:
        reattributed(change)


@devices.command("retire")
def devices_retire(ctx: typer.Context, device: Device, reason: Reason, at: At = None) -> None:
    """Take a recorder out of service (now, or --at); its open assignment ends then."""
    _retire(ctx, device, "retired", at, reason)


@devices.command("lost")
def devices_lost(ctx: typer.Context, device: Device, reason: Reason, at: At = None) -> None:
    """Report a recorder lost (now, or --at); its open assignment ends then, and it
    raises a critical alert if it is ever docked."""
    _retire(ctx, device, "lost", at, reason)


def register(app: typer.Typer) -> None:
    app.add_typer(devices, name="devices")
    app.add_typer(officers, name="officers")
    app.add_typer(assignments, name="assign")
