"""The scheduled duties check (``[schedule] duties``): what the regulations want written.

Two checks, recorded together as one ``duties`` sweep run:

* gaps left unexplained (R12): every gap of the gap report that ended more than
  ``[reports] explain_gaps_within_days`` ago and that no written explanation covers
  raises a ``gap.unexplained`` alert, once per gap (one waiting for approval counts as
  written: it is the approver's turn);
* the inspection register (R16): when no inspection is recorded within ``[inspection]
  every_months`` of the last one (with none yet, of the ledger's first event), an
  ``inspection.overdue`` alert names the last inspection's date, once per due date.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.config.policy import add_months
from dockd.context import Context
from dockd.evidence import inspections
from dockd.evidence.explanations import Standing
from dockd.ledger.models import Alert, AuditEvent
from dockd.reports.base import Period
from dockd.reports.footage import gaps
from dockd.sweeps.runs import sweep_run

GAP_KIND = "gap.unexplained"
INSPECTION_KIND = "inspection.overdue"


@dataclass
class DutiesResult:
    unexplained_gaps: list[dict[str, Any]] = field(default_factory=list)
    last_inspection: str | None = None
    inspection_due: str | None = None
    inspection_overdue: bool = False
    alerts_raised: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspection_due(session: Session, ctx: Context) -> tuple[date | None, date | None]:
    """(last inspection, the date the next one is due); without any inspection, due
    ``every_months`` after the ledger's first event (None: an empty ledger)."""
    tz = ctx.config.station.tz
    last = inspections.last_inspected(session)
    since = last
    if since is None:
        first = session.scalar(select(func.min(AuditEvent.at)))
        if first is None:
            return None, None
        since = first.astimezone(tz).date()
    return last, add_months(since, ctx.config.inspection.every_months)


def _groups(session: Session, station: str, kind: str) -> set[str]:
    return {
        g
        for (g,) in session.execute(
            select(Alert.group_key).where(Alert.station == station, Alert.kind == kind)
        )
        if g is not None
    }


def run_duties(ctx: Context, *, dry_run: bool = False) -> DutiesResult:
    """Alert on gaps unexplained past their time and on an overdue inspection."""
    cfg = ctx.config
    tz = cfg.station.tz
    now = ctx.clock.now()
    today = now.astimezone(tz).date()
    cutoff = now - timedelta(days=cfg.reports.explain_gaps_within_days)
    out = DutiesResult()
    with sweep_run(ctx, "duties", dry_run=dry_run) as run:
        with ctx.ledger.read() as s:
            found = gaps(s, cfg, Period(None, cutoff), now).rows
            last, due = inspection_due(s, ctx)
            raised_gaps = _groups(s, cfg.station.id, GAP_KIND)
            raised_due = _groups(s, cfg.station.id, INSPECTION_KIND)
        out.unexplained_gaps = [g for g in found if g["explained"] == Standing.NO]
        out.last_inspection = last.isoformat() if last else None
        out.inspection_due = due.isoformat() if due else None
        out.inspection_overdue = due is not None and today >= due
        if not dry_run:
            for g in out.unexplained_gaps:
                group = f"{g['device']}@{g['gap_from']}"
                if group in raised_gaps:
                    continue
                ctx.alerts.raise_alert(
                    GAP_KIND,
                    g["device"],
                    f"the gap in recorder {g['device']}'s footage from {g['gap_from']} to "
                    f"{g['gap_to']} ({g['gap_minutes']} min, officer {g['officer']}) is not "
                    f"explained {cfg.reports.explain_gaps_within_days} day(s) on (R12): "
                    f"`dockd explain gap --device {g['device']} --from ... --to ... "
                    "--reason ...` writes the explanation",
                    details=g,
                    group=group,
                )
                out.alerts_raised += 1
            if out.inspection_overdue and due is not None and due.isoformat() not in raised_due:
                since = (
                    f"the last inspection was on {last.isoformat()}"
                    if last
                    else "no inspection is recorded yet"
                )
                ctx.alerts.raise_alert(
                    INSPECTION_KIND,
                    "inspection register",
                    f"no inspection recorded within {cfg.inspection.every_months} month(s): "
                    f"{since}; one was due by {due.isoformat()} (R16). "
                    "`dockd inspection record` records one",
                    details={"last": out.last_inspection, "due": due.isoformat()},
                    group=due.isoformat(),
                )
                out.alerts_raised += 1
        summary = out.as_dict()
        summary["unexplained_gaps"] = len(out.unexplained_gaps)
        run.summary = summary
    return out
