"""``dockd report NAME``: compliance reports from the ledger, as a table, CSV or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from dockd.cli.common import Format, app_of, parse_time, render
from dockd.errors import UsageError
from dockd.reports.base import Period
from dockd.reports.catalog import REPORTS, run_report

_NAMES = "\n\n".join(f"{name}: {desc}" for name, (_, desc) in REPORTS.items())


def report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Which report (see below).", metavar="NAME")],
    from_: Annotated[str | None, typer.Option("--from", help="Period start.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Period end (a date: through).")] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="One day: --from D --to D (daily: a workday).")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    state = app_of(ctx)
    cfg = state.config
    if date is not None:
        if from_ is not None or to is not None:
            raise UsageError("--date is one day; give it or --from/--to, not both")
        from_ = to = date
    period = Period(parse_time(from_, cfg), parse_time(to, cfg, end=True))
    with state.ledger.session() as s:
        result = run_report(name, s, cfg, period, state.clock.now())
    render(result.rows, fmt, columns=result.columns, title=f"{result.name}: {result.title}")


report.__doc__ = (
    "A compliance report over a period (footage by recording time; events by their time)."
    f"\n\nReports:\n\n{_NAMES}"
)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
