"""The reports ``dockd report NAME`` knows, by name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.errors import UsageError
from dockd.reports import daily, devices, filing, footage, trail
from dockd.reports.base import PagedFn, Period, Report, ReportFn
from dockd.runtime import heap_held

REPORTS: dict[str, tuple[ReportFn, str]] = {
    "late": (footage.late, "files ingested later than reports.late_ingest_hours (R2)"),
    "gaps": (footage.gaps, "breaks longer than reports.gap_minutes between clips (R12)"),
    "untagged": (
        footage.untagged,
        "footage without a case after reports.untagged_days, per officer, device and day (R5)",
    ),
    "untagged-files": (
        footage.untagged_files,
        "each file without a case after reports.untagged_days (R5)",
    ),
    "usage-officer": (footage.usage_officer, "hours, files, days active, late share per officer"),
    "usage-device": (footage.usage_device, "hours, files, days active, late share per device"),
    "holds": (trail.holds, "holds active in the period and the files they cover (R7)"),
    "deletions": (trail.deletions, "trashed and purged files with their audit events (R9)"),
    "sessions": (trail.sessions, "incomplete or failed dock sessions (R17)"),
    "clock": (footage.clock, "devices with clock-suspect footage (R13)"),
    "badge-mismatch": (
        footage.badge_mismatch,
        "footage whose file name carries another badge than the assigned officer's (R1)",
    ),
    "daily": (
        daily.daily,
        "per workday: each assigned device docked or not, files, late, failed sessions (R3)",
    ),
    "access": (trail.access, "every view and export: who, why, approved by whom (R10)"),
    "case-filing": (
        filing.case_filing,
        "closed cases: is their footage filed (archived or handed over) within "
        "archive.case_filing_days of the close? (004 全过程 §25)",
    ),
    "coverage": (
        devices.coverage,
        "recorders in service per unit against reports.officers_per_device, and those "
        "without a custodian or an officer (as of --to, else now)",
    ),
}


#: The reports a page of which reads its own rows and a count, not the whole report
#: (a month of a large station's untagged files is 370,000 rows): name -> the page's
#: function, which takes the rows to skip and how many to give (None: all).
PAGED: dict[str, PagedFn] = {"untagged-files": footage.untagged_files_page}


def run_report(
    name: str, session: Session, config: Config, period: Period, now: datetime
) -> Report:
    try:
        fn, _ = REPORTS[name]
    except KeyError:
        raise UsageError(f"no report named {name!r}; choose one of: {', '.join(REPORTS)}") from None
    with heap_held():
        return fn(session, config, period, now)
