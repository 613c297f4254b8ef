"""``dockd explain gap|non-recording|approve|list``: written explanations of missing footage (R12).

The writer is the account running the command; the approver another account with the
leader or legal role (:mod:`dockd.evidence.explanations`). The gap report
(``dockd report gaps``) shows which gaps an explanation covers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from dockd.cli.common import App, Format, app_of, parse_time, render
from dockd.errors import UsageError
from dockd.evidence import explanations
from dockd.evidence.explanations import ExplanationKind

app = typer.Typer(
    help="Explain in writing a gap or a recording not made; approve; list.",
    no_args_is_help=True,
)

Reason = Annotated[str, typer.Option("--reason", help="Why, in words.")]


@app.command("gap")
def gap(
    ctx: typer.Context,
    from_: Annotated[str, typer.Option("--from", help="Start of the span explained.")],
    to: Annotated[str, typer.Option("--to", help="End of the span (a date: through).")],
    reason: Reason,
    device: Annotated[str | None, typer.Option("--device", help="A device number.")] = None,
    officer: Annotated[str | None, typer.Option("--officer", help="A badge number.")] = None,
) -> None:
    """Explain why a device's or officer's recording broke off from --from to --to."""
    state = app_of(ctx)
    start, end = parse_time(from_, state.config), parse_time(to, state.config, end=True)
    assert start is not None and end is not None
    _write(state, ExplanationKind.GAP, reason, start, end, device=device, officer=officer)


def _write(
    state: App,
    kind: ExplanationKind,
    reason: str,
    start: datetime,
    end: datetime,
    *,
    device: str | None,
    officer: str | None,
) -> None:
    """Write the explanation in the signed-in account's name, and say its number."""
    account = state.account()
    with state.ledger.session() as s:
        row = explanations.write(
            s,
            kind=kind,
            reason=reason,
            start=start,
            end=end,
            actor=account,
            at=state.clock.now(),
            station=state.config.station.id,
            device=device,
            officer=officer,
        )
        number = row.id
    typer.echo(f"explanation #{number} written by {account.login}; awaiting approval")


@app.command("non-recording")
def non_recording(
    ctx: typer.Context,
    officer: Annotated[str, typer.Option("--officer", help="The officer's badge number.")],
    at: Annotated[str, typer.Option("--at", help="When the recording should have been made.")],
    reason: Reason,
    device: Annotated[str | None, typer.Option("--device", help="The device, if one.")] = None,
) -> None:
    """Explain why a recording was not made at all (at --at, by --officer)."""
    state = app_of(ctx)
    when = parse_time(at, state.config)
    assert when is not None
    _write(state, ExplanationKind.NON_RECORDING, reason, when, when, device=device, officer=officer)


@app.command("approve")
def approve(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(help="The explanation's id (`dockd explain list`).")],
) -> None:
    """Approve another account's explanation (leader or legal; never one's own)."""
    state = app_of(ctx)
    account = state.account()
    with state.ledger.session() as s:
        row = explanations.approve(
            s, number, actor=account, at=state.clock.now(), station=state.config.station.id
        )
        writer = row.written_by
    typer.echo(f"explanation #{number} by {writer} approved by {account.login}")


@app.command("list")
def list_(
    ctx: typer.Context,
    pending: Annotated[bool, typer.Option("--pending", help="Only those awaiting approval.")] = (
        False
    ),
    device: Annotated[str | None, typer.Option("--device", help="Only this device.")] = None,
    officer: Annotated[str | None, typer.Option("--officer", help="Only this badge.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The explanations written: what, why, by whom, approved by whom."""
    state = app_of(ctx)
    tz = state.config.station.tz
    if device is not None and officer is not None:
        raise UsageError("give --device or --officer, not both")
    with state.ledger.read() as s:
        rows = [
            explanations.as_row(e, tz)
            for e in explanations.listed(s, pending=pending, device=device, officer=officer)
        ]
    render(rows, fmt, columns=explanations.LIST_COLUMNS, title="explanations")
