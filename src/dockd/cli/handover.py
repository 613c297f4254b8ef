"""``dockd handover``: the quarterly hand-over of long-kept footage to the archivist (R3).

``dockd handover --quarter 2026Q4`` is ``dockd handover make --quarter 2026Q4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dockd.cli.common import Format, app_of, render
from dockd.cli.registry import DefaultGroup
from dockd.ledger.models import Handover


class _MakeByDefault(DefaultGroup):
    default = "make"


app = typer.Typer(
    cls=_MakeByDefault,
    help="The quarterly hand-over to the archive: `dockd handover --quarter 2026Q4`, "
    "`dockd handover receive ID`, `dockd handover list`.",
    no_args_is_help=True,
)


def _row(h: Handover, tz: Any) -> dict[str, Any]:
    def local(t: Any) -> str | None:
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if t is not None else None

    return {
        "id": h.id,
        "quarter": h.quarter,
        "files": h.files,
        "mb": round(h.bytes / 1e6, 1),
        "made": local(h.made_at),
        "made_by": h.made_by,
        "received": local(h.received_at),
        "received_by": h.received_by,
        "bag": h.path,
    }


@app.command("make")
def make(
    ctx: typer.Context,
    quarter: Annotated[str, typer.Option("--quarter", help="Which quarter, e.g. 2026Q4.")],
) -> None:
    """Make the quarter's hand-over package in [handover] root: a verified bag of its
    long-kept footage with the hand-over record to sign (handover-record.html).

    It is made under the standing policy (R3), restricted footage included, so it goes
    only where [handover] root says: never to a directory of the caller's choosing."""
    from dockd.evidence import handover as core  # BagIt, disc writer: hand-overs only

    state = app_of(ctx)
    actor = state.account()
    made = core.make(
        config=state.config,
        ledger=state.ledger,
        alerts=state.alerts,
        clock=state.clock,
        period=core.quarter(quarter, state.config),
        actor=actor.login,
        approved_by=core.POLICY,
    )
    typer.echo(
        f"hand-over {made.id} of {made.quarter}: {made.files} file(s), "
        f"{made.bytes / 1e6:.1f} MB, in {made.path}\n"
        f"print {made.path}/{core.RECORD_HTML}, sign it, and give it with the package to "
        f"the archivist, who checks and records the receipt: dockd handover receive {made.id}"
    )


@app.command("receive")
def receive(
    ctx: typer.Context,
    handover_id: Annotated[int, typer.Argument(help="The hand-over's id (handover list).")],
    path: Annotated[
        Path | None, typer.Option("--path", help="Where the package is now (default: made).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Anything about the receipt.")] = None,
) -> None:
    """Check the package as received (every hash re-read, the tag files the ones made)
    and record the receipt in your name."""
    from dockd.evidence import handover as core  # BagIt, disc writer: hand-overs only

    state = app_of(ctx)
    actor = state.account()
    with state.ledger.session() as s:
        row = core.receive(
            s,
            state.config,
            handover_id=handover_id,
            actor=actor.login,
            at=state.clock.now(),
            note=note,
            path=path,
        )
        typer.echo(f"hand-over {row.id} ({row.quarter}) received by {actor.login}: checked")


@app.command("list")
def list_(
    ctx: typer.Context, fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table
) -> None:
    """Every hand-over of this station, made and received."""
    from dockd.evidence import handover as core  # BagIt, disc writer: hand-overs only

    state = app_of(ctx)
    tz = state.config.station.tz
    with state.ledger.read() as s:
        rows = [_row(h, tz) for h in core.list_handovers(s, state.config.station.id)]
    render(rows, fmt, title="hand-overs")
