"""``dockd hold add|release|list``: legal holds, footage that must not be deleted (R7)."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, parse_time, render
from dockd.ledger.models import FileState
from dockd.policy import adapter as pledger
from dockd.policy import placing
from dockd.policy.holds import HoldReason
from dockd.sweeps.trash import restore_covered

app = typer.Typer(help="Legal holds: footage that must never be deleted.", no_args_is_help=True)

LIST_COLUMNS = [
    "id",
    "reason",
    "text",
    "target",
    "from",
    "until",
    "placed_at",
    "placed_by",
    "released_at",
    "released_by",
    "files",
]


@app.command("add")
def add(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option("--reason", help=f"One of: {', '.join(HoldReason)}.")],
    text: Annotated[
        str | None, typer.Option("--text", help="Why, in words (required for 'other').")
    ] = None,
    file: Annotated[int | None, typer.Option("--file", help="A file id.")] = None,
    case: Annotated[str | None, typer.Option("--case", help="A case number.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="A device number.")] = None,
    officer: Annotated[str | None, typer.Option("--officer", help="A badge number.")] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Device/officer: window start.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Device/officer: window end (a date: through).")
    ] = None,
) -> None:
    """Hold a file, a case, or a device's / officer's footage over a time window."""
    state = app_of(ctx)
    cfg = state.config
    account = state.account()
    who = account.login
    with state.ledger.session() as s:
        placed = placing.place_hold(
            s,
            station=cfg.station.id,
            at=state.clock.now(),
            by=who,
            reason=reason,
            text_=text,
            file_id=file,
            case_number=case,
            device_ref=device,
            officer_badge=officer,
            window_from=parse_time(from_, cfg),
            window_until=parse_time(until, cfg, end=True),
        )
        hold_id, target = placed.hold.id, pledger.hold_target(placed.hold)
    typer.echo(f"hold #{hold_id} placed on {target} ({placed.hold.reason}) by {who}")
    for w in placed.warnings:
        typer.echo(f"warning: {w}", err=True)
    sctx = state.context(account)
    for item in restore_covered(sctx, hold_id, by=who):
        typer.echo(f"restored from the trash: file {item.file_id} {item.store_path}")


@app.command("release")
def release(
    ctx: typer.Context,
    hold_id: Annotated[int, typer.Argument(help="The hold's id (`dockd hold list`).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is released.")],
) -> None:
    """Release a hold. Its files keep their retention; nothing is deleted sooner."""
    state = app_of(ctx)
    who = state.account().login
    with state.ledger.session() as s:
        hold = placing.release_hold(
            s,
            hold_id,
            station=state.config.station.id,
            at=state.clock.now(),
            by=who,
            reason=reason,
        )
        target = pledger.hold_target(hold)
    typer.echo(f"hold #{hold_id} on {target} released by {who}")


@app.command("list")
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
    file: Annotated[
        int | None, typer.Option("--file", help="Only holds covering this file.")
    ] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Only holds placed or released by.")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Active holds (with --all, released ones too), with how many stored files each covers."""
    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = []
        for h in pledger.list_holds(s, include_released=all_, file_id=file, reason=reason, by=by):
            d = pledger.hold_dict(h, tz)
            d["files"] = len(pledger.covered_files(s, h, states=(FileState.STORED,)))
            rows.append(d)
    render(rows, fmt, columns=LIST_COLUMNS if fmt is Format.table else None, title="holds")
