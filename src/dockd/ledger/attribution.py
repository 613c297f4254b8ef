"""Which officer a recording belongs to ("whoever wears it is responsible", R1).

The officer is whoever held the device at the recording time (its assignments),
else the officer whose badge the file name carries. A file whose name carries a
badge other than the assigned officer's is flagged ``badge-mismatch`` (lending a
recorder is forbidden). Ingest decides this once; an assignment entered, ended or
corrected later re-attributes the files of its window here, each change audited
with the old and the new officer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, or_, select
from sqlalchemy.orm import Session

from dockd.ledger import audit
from dockd.ledger.models import Assignment, Officer, Recording


@dataclass(frozen=True)
class Attribution:
    """The officer a file is attributed to, and whether its name's badge disagrees."""

    officer: Officer | None
    badge_mismatch: bool


class Who(NamedTuple):
    """:class:`Attribution` as plain values: what an ingest writes in a file's row."""

    officer_id: int | None
    badge: str | None
    badge_mismatch: bool


# Built once: an ingest asks them for every file it takes.
_ASSIGNED = (
    select(Officer.id, Officer.badge)
    .join(Assignment, Assignment.officer_id == Officer.id)
    .where(Assignment.device_id == bindparam("device"), Assignment.valid_from <= bindparam("when"))
    .where(or_(Assignment.valid_until.is_(None), Assignment.valid_until > bindparam("when")))
    .limit(1)
)
_NAMED = select(Officer.id, Officer.badge).where(Officer.badge == bindparam("badge")).limit(1)


def who(
    conn: Connection | Session, device_id: int | None, start: datetime, badge_hint: str | None
) -> Who:
    """The assigned officer at ``start``, else the one the name's badge names. Asked on
    a bare connection (``Ledger.read_rows``) by an ingest: no ORM object per file."""
    if device_id is not None:
        held = conn.execute(_ASSIGNED, {"device": device_id, "when": start}).first()
        if held is not None:
            return Who(held.id, held.badge, bool(badge_hint) and badge_hint != held.badge)
    named = conn.execute(_NAMED, {"badge": badge_hint}).first() if badge_hint else None
    return Who(named.id, named.badge, False) if named is not None else Who(None, None, False)


def officer_at(session: Session, device_id: int, when: datetime) -> Officer | None:
    """The officer who held the device at ``when``, if any assignment covers it."""
    held = session.execute(_ASSIGNED, {"device": device_id, "when": when}).first()
    return session.get(Officer, held.id) if held is not None else None


def attribute(
    session: Session, device_id: int | None, start: datetime, badge_hint: str | None
) -> Attribution:
    """:func:`who`, with the officer as an entity."""
    found = who(session, device_id, start, badge_hint)
    officer = session.get(Officer, found.officer_id) if found.officer_id is not None else None
    return Attribution(officer, found.badge_mismatch)


def set_officer(
    session: Session,
    row: Recording,
    officer: Officer | None,
    mismatch: bool,
    *,
    at: datetime,
    actor: str,
    reason: str,
    by_hand: bool = False,
) -> bool:
    """Attribute one file to ``officer``, audited with the old and the new badge;
    False (and no event) when neither the officer nor the flag changes. ``by_hand``: a
    person decided it, and the assignments no longer re-attribute the file."""
    new_id = officer.id if officer is not None else None
    pins = by_hand and not row.officer_by_hand  # a person confirms it: kept from now on
    if row.officer_id == new_id and row.badge_mismatch == mismatch and not pins:
        return False
    old = row.officer.badge if row.officer is not None else None
    row.officer_id, row.badge_mismatch = new_id, mismatch
    row.officer_by_hand = row.officer_by_hand or by_hand
    row.officer = officer
    audit.record_file_change(
        session,
        row,
        at=at,
        actor=actor,
        action="file.officer",
        changed=("officer_id", "officer_by_hand"),
        details={
            "old": old,
            "new": officer.badge if officer is not None else None,
            "reason": reason,
            "badge_hint": row.badge_hint,
            "badge_mismatch": mismatch,
            "by_hand": by_hand,
        },
    )
    return True


def reattribute(
    session: Session,
    device_id: int,
    window: tuple[datetime, datetime | None],
    *,
    at: datetime,
    actor: str,
    reason: str,
) -> int:
    """Attribute every file of the device recorded in ``[from, until)`` (open when None)
    to the officer in force at its recording time; returns how many changed. A file
    attributed by hand (``dockd tag --officer``) keeps its officer."""
    start, until = window
    q = select(Recording).where(
        Recording.device_id == device_id,
        Recording.recorded_start >= start,
        Recording.officer_by_hand.is_(False),
    )
    if until is not None:
        q = q.where(Recording.recorded_start < until)
    changed = 0
    for row in list(session.scalars(q.order_by(Recording.recorded_start, Recording.id))):
        found = attribute(session, device_id, row.recorded_start, row.badge_hint)
        changed += set_officer(
            session, row, found.officer, found.badge_mismatch, at=at, actor=actor, reason=reason
        )
    return changed
