"""Cases and case tagging (R4, R5): which footage belongs to which case.

Three ways a recording gets its case labels (case number, cause, party,
category, access class), all through :func:`apply_tag`, so every change is one
``file.tag`` audit event carrying the new values:

* ``dockd tag``: by file ids, or by device or officer over a time window;
* ``dockd cases import`` (:mod:`dockd.evidence.caseimport`): cases from the
  agency's case system (case number, officer badge, start, end, cause, party) tag
  the footage of that officer whose recording overlaps the case window
  (:func:`tag_case_window`);
* :func:`tag_on_ingest`: footage docked after the import is tagged the same way
  inside the transaction that writes its row.

This module also answers the case queries (:func:`list_cases`,
:func:`case_file_counts`, :func:`of_officer`).

An automatic tag never overwrites a different case number already on a file (a
person put it there); such files are reported as conflicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import Case, Officer, Recording

ACCESS_CLASSES = ("normal", "restricted")
TAG_COLUMNS = ("case_number", "case_cause", "party", "place", "category", "access_class")


@dataclass(frozen=True)
class Tag:
    """Labels to set; ``None`` leaves a label as it is."""

    case_number: str | None = None
    cause: str | None = None
    party: str | None = None
    place: str | None = None
    category: str | None = None
    access_class: str | None = None

    def columns(self) -> dict[str, str]:
        """The file columns this tag sets, with their new values."""
        if self.access_class is not None and self.access_class not in ACCESS_CLASSES:
            raise UsageError(
                f"access class {self.access_class!r} is not one of {', '.join(ACCESS_CLASSES)}"
            )
        values = {
            "case_number": self.case_number,
            "case_cause": self.cause,
            "party": self.party,
            "place": self.place,
            "category": self.category,
            "access_class": self.access_class,
        }
        return {k: v for k, v in values.items() if v is not None}


def apply_tag(
    session: Session,
    row: Recording,
    values: dict[str, str],
    *,
    at: datetime,
    actor: str,
    details: dict[str, Any] | None = None,
) -> bool:
    """Set ``values`` on one file row and audit it; False (and no event) if nothing changed."""
    changed = tuple(c for c in TAG_COLUMNS if c in values and getattr(row, c) != values[c])
    if not changed:
        return False
    before = {c: getattr(row, c) for c in changed}
    for c in changed:
        setattr(row, c, values[c])
    if {"case_number", "category"} & set(changed):
        # the retention that applies may have changed: the next sweep works it out again
        row.expires_at = None
    payload = dict(details or {})
    payload["before"] = before
    audit.record_file_change(
        session, row, at=at, actor=actor, action="file.tag", changed=changed, details=payload
    )
    return True


# ----------------------------------------------------------------------------- selecting


def _file_end() -> ColumnElement[datetime]:
    return func.coalesce(Recording.recorded_end, Recording.recorded_start)


def of_officer(badge: str) -> ColumnElement[bool]:
    """Files of the officer with this badge (by assignment, else by the badge in the name)."""
    officer_ids = select(Officer.id).where(Officer.badge == badge).scalar_subquery()
    return or_(
        Recording.officer_id.in_(officer_ids),
        and_(Recording.officer_id.is_(None), Recording.badge_hint == badge),
    )


def select_files(
    session: Session,
    *,
    file_ids: Sequence[int] = (),
    device: str | None = None,
    officer: str | None = None,
    window_from: datetime | None = None,
    window_to: datetime | None = None,
) -> list[Recording]:
    """The files to tag: given ids, or a device's / officer's recordings overlapping a window.

    The window is ``[window_from, window_to)``; a recording overlaps it if any part of
    it (start to end) falls inside. Purged files are never selected.
    """
    if file_ids:
        if device or officer or window_from or window_to:
            raise UsageError(
                "give either file ids or --device/--officer with --from/--to, not both"
            )
        rows = list(session.scalars(select(Recording).where(Recording.id.in_(file_ids))))
        missing = sorted(set(file_ids) - {r.id for r in rows})
        if missing:
            raise NotFound(
                f"no file with id {', '.join(map(str, missing))}; `dockd ledger query` lists them"
            )
        purged = [r.id for r in rows if r.state == "purged"]
        if purged:
            raise UsageError(f"file(s) {purged} were purged by retention and cannot be tagged")
        return sorted(rows, key=lambda r: r.id)
    if not (device or officer):
        raise UsageError("say which files: file ids, or --device or --officer with --from and --to")
    if window_from is None or window_to is None:
        raise UsageError("--device/--officer need both --from and --to (the time window)")
    if window_to <= window_from:
        raise UsageError("--to must be after --from")
    q = select(Recording).where(
        Recording.state != "purged",
        Recording.recorded_start < window_to,
        _file_end() >= window_from,
    )
    if device:
        q = q.where(Recording.device_ref == device)
    if officer:
        q = q.where(of_officer(officer))
    rows = list(session.scalars(q.order_by(Recording.recorded_start, Recording.id)))
    if not rows:
        who = " and ".join(
            x
            for x in (f"device {device}" if device else "", f"officer {officer}" if officer else "")
            if x
        )
        raise NotFound(
            f"no footage of {who} recorded between {window_from.isoformat()} and "
            f"{window_to.isoformat()}; check the window with `dockd ledger query`"
        )
    return rows


@dataclass
class TagResult:
    tagged: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    conflicts: list[tuple[int, str, str]] = field(default_factory=list)  # id, has, wanted


def tag_files(
    session: Session,
    rows: Iterable[Recording],
    tag: Tag,
    *,
    at: datetime,
    actor: str,
    reason: str | None = None,
) -> TagResult:
    """Tag files by hand (``dockd tag``): sets every given label, overwriting earlier ones."""
    values = tag.columns()
    if not values:
        raise UsageError(
            "nothing to set: give --case, --cause, --party, --place, --category or --access"
        )
    result = TagResult()
    details: dict[str, Any] = {"source": "manual"}
    if reason:
        details["reason"] = reason
    for row in rows:
        if apply_tag(session, row, values, at=at, actor=actor, details=details):
            result.tagged.append(row.id)
        else:
            result.unchanged.append(row.id)
    return result


# ----------------------------------------------------------------------------- cases


def _case_values(case: Case) -> dict[str, str]:
    values = {"case_number": case.case_number}
    if case.cause is not None:
        values["case_cause"] = case.cause
    if case.party is not None:
        values["party"] = case.party
    if case.place is not None:
        values["place"] = case.place
    if case.category is not None:
        values["category"] = case.category
    return values


def _tag_from_case(
    session: Session,
    row: Recording,
    case: Case,
    *,
    at: datetime,
    actor: str,
    source: str,
    result: TagResult,
) -> None:
    if row.case_number is not None and row.case_number != case.case_number:
        result.conflicts.append((row.id, row.case_number, case.case_number))
        return
    details = {"source": source, "case_id": case.id, "officer": case.officer_badge}
    if apply_tag(session, row, _case_values(case), at=at, actor=actor, details=details):
        result.tagged.append(row.id)
    else:
        result.unchanged.append(row.id)


def files_in_case_window(session: Session, case: Case) -> list[Recording]:
    """Stored footage of the case's officer whose recording overlaps the case window."""
    if case.officer_badge is None or case.starts_at is None:
        return []
    q = select(Recording).where(
        Recording.state == "stored",
        of_officer(case.officer_badge),
        _file_end() >= case.starts_at,
    )
    if case.ends_at is not None:
        q = q.where(Recording.recorded_start <= case.ends_at)
    return list(session.scalars(q.order_by(Recording.recorded_start, Recording.id)))


def tag_case_window(
    session: Session, case: Case, *, at: datetime, actor: str, result: TagResult
) -> None:
    """Tag the footage in a just-imported case's window (``dockd cases import``)."""
    for row in files_in_case_window(session, case):
        _tag_from_case(session, row, case, at=at, actor=actor, source="case-import", result=result)


def tag_on_ingest(session: Session, rows: Sequence[Recording], *, actor: str) -> None:
    """Tag just-ingested recordings with any imported case whose window covers them,
    each tagged at its ingest time.

    Called by the ingest pipeline inside the transaction that writes the file rows,
    so footage docked after a case import is tagged exactly like footage before it.
    When several cases of the officer overlap, the earliest-starting one wins; a
    different case can be set by hand with ``dockd tag``. The cases that may cover
    any of ``rows`` are read in one query. The per-case view
    (:mod:`dockd.evidence.bycase`) is not touched here (no config in reach): it catches
    up at the next ``bycase.rebuild``.
    """
    wanted: list[tuple[Recording, str]] = []
    for row in rows:
        if row.case_number is not None:
            continue
        officer = session.get(Officer, row.officer_id) if row.officer_id is not None else None
        badge = (officer.badge if officer is not None else None) or row.badge_hint
        if badge is not None:
            wanted.append((row, badge))
    if not wanted:
        return
    first = min(row.recorded_start for row, _ in wanted)
    last = max(row.recorded_end or row.recorded_start for row, _ in wanted)
    q = (
        select(Case)
        .where(
            Case.officer_badge.in_(sorted({badge for _, badge in wanted})),
            Case.starts_at.is_not(None),
            Case.starts_at <= last,
            or_(Case.ends_at.is_(None), Case.ends_at >= first),
        )
        .order_by(Case.starts_at, Case.id)
    )
    found = list(session.scalars(q))
    for row, badge in wanted:
        end = row.recorded_end or row.recorded_start
        case = next((c for c in found if c.officer_badge == badge and _covers(c, row, end)), None)
        if case is not None:
            at, tagged = row.ingested_at, TagResult()
            _tag_from_case(session, row, case, at=at, actor=actor, source="ingest", result=tagged)


def _covers(case: Case, row: Recording, end: datetime) -> bool:
    """Whether the case's window (it has a start) overlaps the recording ending at ``end``."""
    assert case.starts_at is not None
    return case.starts_at <= end and (case.ends_at is None or case.ends_at >= row.recorded_start)


def list_cases(session: Session, *, case_number: str | None = None) -> list[Case]:
    q = select(Case).order_by(Case.case_number, Case.officer_badge, Case.id)
    if case_number is not None:
        q = q.where(Case.case_number == case_number)
    return list(session.scalars(q))


def case_file_counts(session: Session) -> dict[str, int]:
    """How many stored files carry each case number."""
    q = (
        select(Recording.case_number, func.count())
        .where(Recording.case_number.is_not(None), Recording.state == "stored")
        .group_by(Recording.case_number)
    )
    return {number: n for number, n in session.execute(q) if number is not None}
