"""Closing cases, and filing a closed case's footage within 30 days (004 全过程 §25).

A case ends in the case system; dockd learns it from the import (a ``closed``
column) or from ``dockd cases close CASE``. Closing starts the clock of the evidence
retention category (kept ``after_close_days`` more) and of filing: within
``[archive] case_filing_days`` (30) of the close, every stored file of the case must
be filed, that is have a verified archive copy (the archive sweep copies closed
cases' footage) or be in a quarterly hand-over package. ``dockd report
case-filing`` lists each closed case with its due date and what is still unfiled;
the archive sweep raises a ``case.not_filed`` alert for each case past its due date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import ArchiveCopy, Case, FileState, HandoverFile, Recording
from dockd.policy.adapter import refresh_expiry


def _cases(session: Session, case_number: str) -> list[Case]:
    rows = list(session.scalars(select(Case).where(Case.case_number == case_number)))
    if not rows:
        raise NotFound(
            f"no case {case_number!r} in the ledger; import it first (`dockd cases import`)"
        )
    return rows


def _changed(
    session: Session,
    config: Config,
    case_number: str,
    *,
    action: str,
    details: dict[str, Any],
    at: datetime,
    actor: str,
) -> int:
    """Audit the change and bring the retention end of the case's files up to date;
    returns how many stored files the case has."""
    audit.record_stamped(
        session, audit.Stamp(at, config.station.id, actor), action, "case", case_number, details
    )
    files = list(
        session.scalars(
            select(Recording).where(
                Recording.case_number == case_number, Recording.state == FileState.STORED
            )
        )
    )
    for row in files:
        refresh_expiry(session, row, config.retention)
    return len(files)


def close_case(
    session: Session,
    config: Config,
    case_number: str,
    *,
    when: datetime,
    reason: str,
    at: datetime,
    actor: str,
) -> int:
    """Mark the case ended at ``when``; returns how many stored files it has."""
    if when > at:
        raise UsageError(f"{when.isoformat()} is in the future: close a case once it has ended")
    rows = _cases(session, case_number)
    closed = [c.closed_at for c in rows if c.closed_at is not None]
    if len(closed) == len(rows):
        raise UsageError(
            f"case {case_number} is closed already (on "
            f"{max(closed).astimezone(config.station.tz):%Y-%m-%d %H:%M}); `dockd cases "
            "reopen` first to give another date"
        )
    for c in rows:
        c.closed_at = when
    details = {"closed_at": when.isoformat(), "reason": reason}
    return _changed(
        session, config, case_number, action="case.closed", details=details, at=at, actor=actor
    )


def reopen_case(
    session: Session, config: Config, case_number: str, *, reason: str, at: datetime, actor: str
) -> int:
    """The case is open again (its evidence is kept until it closes anew)."""
    rows = _cases(session, case_number)
    before = [c.closed_at for c in rows if c.closed_at is not None]
    if not before:
        raise UsageError(f"case {case_number} is not closed")
    for c in rows:
        c.closed_at = None
    details = {"was_closed_at": max(before).isoformat(), "reason": reason}
    return _changed(
        session, config, case_number, action="case.reopened", details=details, at=at, actor=actor
    )


@dataclass(frozen=True)
class Filing:
    """How far a closed case's footage is filed."""

    case_number: str
    closed_at: datetime
    due: datetime
    files: int
    filed: int

    @property
    def unfiled(self) -> int:
        return self.files - self.filed

    def status(self, now: datetime) -> str:
        if self.unfiled == 0:
            return "filed"
        return "OVERDUE" if now >= self.due else "due"


def filing(
    session: Session, config: Config, *, closed_before: datetime | None = None
) -> list[Filing]:
    """Every closed case with stored footage at this station: files and how many are
    filed (an archive copy, or in a hand-over package)."""
    days = timedelta(days=config.archive.case_filing_days)
    closed = (
        select(Case.case_number, func.max(Case.closed_at).label("closed_at"))
        .group_by(Case.case_number)
        .having(func.count(Case.closed_at) == func.count())  # closed for every officer
        .subquery()
    )
    sound = ArchiveCopy.fixity_status.is_(None) | (ArchiveCopy.fixity_status == "ok")
    filed = exists().where(ArchiveCopy.file_id == Recording.id, sound) | exists().where(
        HandoverFile.file_id == Recording.id
    )
    q = (
        select(
            closed.c.case_number,
            closed.c.closed_at,
            func.count(Recording.id),
            func.count(Recording.id).filter(filed),
        )
        .join(Recording, Recording.case_number == closed.c.case_number)
        .where(Recording.state == FileState.STORED, Recording.station == config.station.id)
        .group_by(closed.c.case_number, closed.c.closed_at)
        .order_by(closed.c.closed_at, closed.c.case_number)
    )
    if closed_before is not None:
        q = q.where(closed.c.closed_at < closed_before)
    out = []
    for number, at, files, done in session.execute(q):
        out.append(Filing(number, at, at + days, files, done))
    return out
