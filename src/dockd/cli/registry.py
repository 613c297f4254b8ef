"""``dockd devices|officers|assign``: the registry of recorders and who holds them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypedDict

import typer

from dockd.cli.common import App, Format, app_of, default_actor, parse_time, render
from dockd.errors import UsageError
from dockd.ledger import registry

devices = typer.Typer(help="Registered recorders.", no_args_is_help=True)
officers = typer.Typer(help="Officers who wear recorders.", no_args_is_help=True)

By = Annotated[str, typer.Option("--by", help="Who makes this change (default: you).")]
Fmt = Annotated[Format, typer.Option("--format", "-f")]


class _Stamp(TypedDict):
    """When, where and by whom a registry change is made (for its audit event)."""

    at: datetime
    station: str
    actor: str


def _stamp(state: App, by: str) -> _Stamp:
    return {
        "at": state.clock.now(),
        "station": state.config.station.id,
        "actor": by or default_actor(),
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
    by: By = "",
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
            **_stamp(state, by),
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
    by: By = "",
) -> None:
    """Register an officer."""
    state = app_of(ctx)
    with state.ledger.session() as s:
        off = registry.add_officer(
            s, badge=badge, name=name, unit=unit or state.config.station.unit, **_stamp(state, by)
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


def assign(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="Device number.")],
    badge: Annotated[str, typer.Argument(help="Badge number of the officer.")],
    from_: Annotated[str, typer.Option("--from", help="Start (ISO date/time; station zone).")],
    until: Annotated[str | None, typer.Option("--until", help="End (open when omitted).")] = None,
    by: By = "",
) -> None:
    """Record that an officer holds a device from a time (until a time)."""
    state = app_of(ctx)
    cfg = state.config
    start = parse_time(from_, cfg)
    if start is None:
        raise UsageError("--from is required")
    with state.ledger.session() as s:
        a = registry.assign(
            s,
            device_number=device,
            badge=badge,
            valid_from=start,
            valid_until=parse_time(until, cfg),
            **_stamp(state, by),
        )
        end = a.valid_until.astimezone(cfg.station.tz).isoformat() if a.valid_until else "open"
        typer.echo(
            f"device {device} -> badge {badge} from "
            f"{a.valid_from.astimezone(cfg.station.tz).isoformat()} until {end}"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(devices, name="devices")
    app.add_typer(officers, name="officers")
    app.command("assign")(assign)
