"""Closed cases and the filing of their footage (004 全过程 §25): ``dockd report
case-filing``, one row per closed case with its due date and what is still unfiled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.evidence import casefiling
from dockd.reports.base import Period, Report, columns

CASE_FILING = columns("case closed due files filed unfiled status")


def case_filing(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Cases closed in the period (every closed case without one)."""
    tz = config.station.tz
    rows = []
    for f in casefiling.filing(session, config):
        if (period.start and f.closed_at < period.start) or (
            period.end and f.closed_at >= period.end
        ):
            continue
        rows.append(
            {
                "case": f.case_number,
                "closed": f"{f.closed_at.astimezone(tz):%Y-%m-%d}",
                "due": f"{f.due.astimezone(tz):%Y-%m-%d}",
                "files": f.files,
                "filed": f.filed,
                "unfiled": f.unfiled,
                "status": f.status(now),
            }
        )
    days = config.archive.case_filing_days
    return Report("case-filing", f"closed cases, filed within {days} days", CASE_FILING, rows)
