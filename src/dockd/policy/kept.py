"""Which stored files are kept beyond routine retention: the ones the archive sweep
copies and the quarterly hand-over packages (R7, R8, R3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dockd.ledger.models import Case, FileState, Hold, Recording
from dockd.policy.adapter import covered_files


def kept_files(
    session: Session,
    *,
    station: str,
    categories: tuple[str, ...],
    case_category: str,
    held: bool = True,
    cases: bool = False,
    closed_cases: bool = False,
    period: tuple[datetime, datetime] | None = None,
) -> set[int]:
    """Ids of this station's stored files kept beyond routine retention: covered by an
    active hold (``held``), in one of ``categories`` themselves or through their case's
    category (a category that is the case category takes every file with a case), or
    tagged with any case (``cases``) or with a closed one (``closed_cases``); only those
    recorded within ``period`` when given.
    The archive sweep copies these; the quarterly hand-over packages them."""
    stored = [Recording.state == FileState.STORED, Recording.station == station]
    if period is not None:
        stored += [Recording.recorded_start >= period[0], Recording.recorded_start < period[1]]
    wanted: set[int] = set()
    if held:
        for hold in session.scalars(select(Hold).where(Hold.released_at.is_(None))):
            covered = covered_files(session, hold, states=(FileState.STORED,))
            wanted.update(
                r.id
                for r in covered
                if r.station == station
                and (period is None or period[0] <= r.recorded_start < period[1])
            )
    arms = []
    if categories:
        cats = list(categories)
        arms += [
            Recording.category.in_(cats),
            Recording.case_number.in_(select(Case.case_number).where(Case.category.in_(cats))),
        ]
    if cases or case_category in categories:
        arms.append(Recording.case_number.is_not(None))
    elif closed_cases:
        closed = select(Case.case_number).where(Case.closed_at.is_not(None))
        arms.append(Recording.case_number.in_(closed))
    if arms:
        wanted.update(session.scalars(select(Recording.id).where(*stored, or_(*arms))))
    return wanted
