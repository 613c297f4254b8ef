"""Case import (R5): cases from the agency's case system, as CSV, into the ledger.

``dockd cases import FILE`` reads the case system's export (UTF-8 or GB18030,
header names in English or Chinese), validates every line before anything is
written (:func:`parse_cases_csv`), then stores or updates each case with a
``case.import`` / ``case.update`` audit event and tags the footage of that
officer overlapping the case window (:func:`dockd.evidence.cases.tag_case_window`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.evidence.cases import TagResult, tag_case_window
from dockd.ledger import audit
from dockd.ledger.models import Case, Officer

_HEADERS: dict[str, tuple[str, ...]] = {
    "case_number": ("case_number", "case", "case_no", "案件编号", "案号"),
    "officer_badge": ("officer_badge", "badge", "officer", "警号"),
    "start": ("start", "starts_at", "start_time", "开始时间"),
    "end": ("end", "ends_at", "end_time", "结束时间"),
    "cause": ("cause", "case_cause", "案由"),
    "party": ("party", "当事人"),
    "place": ("place", "location", "地点"),
    "category": ("category", "类别"),
    "closed": ("closed", "closed_at", "结案时间", "结案日期"),
}
_REQUIRED = ("case_number", "officer_badge", "start")

_CASE_FIELDS = ("starts_at", "ends_at", "cause", "party", "category", "closed_at", "place")
CaseEvent = Literal["case.import", "case.update"]


@dataclass(frozen=True)
class CaseRow:
    """One line of a case-system CSV, validated."""

    line: int
    case_number: str
    officer_badge: str
    starts_at: datetime
    ends_at: datetime | None
    cause: str | None
    party: str | None
    category: str | None
    closed_at: datetime | None = None  # the case ended (结案): retention and filing count
    # Whether the CSV has a closed column: a file without one leaves closing alone (a
    # case closed with `dockd cases close` stays closed when an older export comes in).
    closed_given: bool = False
    place: str | None = None  # 地点: copied to the files tagged from the case

    def fields(self) -> dict[str, Any]:
        """The case columns this line sets (besides its number and badge)."""
        return {k: getattr(self, k) for k in _CASE_FIELDS if k != "closed_at" or self.closed_given}


def read_csv_text(path: Path) -> str:
    """A case CSV as text: UTF-8 (with or without BOM), else GB18030 as Chinese systems write."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError:
            raise UsageError(f"{path} is neither UTF-8 nor GB18030 text") from None


def _parse_when(text: str, tz: ZoneInfo) -> datetime:
    ts = datetime.fromisoformat(text.strip().replace("/", "-"))
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts


def parse_cases_csv(text: str, tz: ZoneInfo, *, source: str = "<csv>") -> list[CaseRow]:
    """Validate a case CSV; raise :class:`UsageError` listing every bad line at once.

    Columns (header names in English or Chinese, any order): case_number,
    officer_badge, start, end, cause, party and optionally category and closed (when
    the case ended, 结案). Times without an offset are in the station's time zone; an
    empty end leaves the window open, an empty closed the case open.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise UsageError(f"{source} is empty; it needs a header line") from None
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        key = name.strip().lower()
        for canon, aliases in _HEADERS.items():
            if key in aliases:
                index[canon] = i
    missing = [c for c in _REQUIRED if c not in index]
    if missing:
        raise UsageError(
            f"{source}: header lacks column(s) {', '.join(missing)}; expected "
            "case_number,officer_badge,start,end,cause,party[,category][,closed][,place]"
        )
    rows: list[CaseRow] = []
    problems: list[str] = []
    for line, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue

        def get(col: str, fields: list[str] = fields) -> str | None:
            i = index.get(col)
            if i is None or i >= len(fields):
                return None
            return fields[i].strip() or None

        where = f"line {line}"
        number, badge = get("case_number"), get("officer_badge")
        start_text, end_text, closed_text = get("start"), get("end"), get("closed")
        if not number or not badge or not start_text:
            problems.append(f"{where}: case_number, officer_badge and start are required")
            continue
        try:
            start = _parse_when(start_text, tz)
            end = _parse_when(end_text, tz) if end_text else None
            closed = _parse_when(closed_text, tz) if closed_text else None
        except ValueError:
            problems.append(f"{where}: times must look like 2026-03-15 08:30 or ISO 8601")
            continue
        if end is not None and end < start:
            problems.append(f"{where}: end {end_text} is before start {start_text}")
            continue
        rows.append(
            CaseRow(
                line,
                number,
                badge,
                start,
                end,
                get("cause"),
                get("party"),
                get("category"),
                closed,
                "closed" in index,
                get("place"),
            )
        )
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise UsageError(f"{source}: {len(problems)} bad line(s), nothing imported:\n{listed}")
    return rows


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown_badges: list[str] = field(default_factory=list)
    tags: TagResult = field(default_factory=TagResult)


def import_cases(
    session: Session,
    rows: Sequence[CaseRow],
    *,
    at: datetime,
    actor: str,
    station: str,
    source: str,
) -> ImportResult:
    """Store (or update) each case and tag the footage overlapping its window.

    A case is identified by case number and officer badge: importing the same
    export again changes nothing; a changed window, cause or party updates the case
    and re-tags. Every created or changed case is a ``case.import`` audit event.
    """
    result = ImportResult()
    for r in rows:
        case, event = _store_case(session, r, at=at, actor=actor)
        if event == "case.import":
            result.created += 1
        elif event == "case.update":
            result.updated += 1
        else:
            result.unchanged += 1
        if event is not None:
            details = {"case_id": case.id, "officer": r.officer_badge, "source": source}
            details |= {"line": r.line, **{k: _json(v) for k, v in r.fields().items()}}
            audit.record(
                session,
                at=at,
                station=station,
                actor=actor,
                action=event,
                subject_type="case",
                subject_id=r.case_number,
                details=details,
            )
        if _badge_unknown(session, r.officer_badge):
            result.unknown_badges.append(r.officer_badge)
        tag_case_window(session, case, at=at, actor=actor, result=result.tags)
    return result


def _store_case(
    session: Session, r: CaseRow, *, at: datetime, actor: str
) -> tuple[Case, CaseEvent | None]:
    """The case of one line, created or updated, and its audit action (None: unchanged)."""
    case = session.scalar(
        select(Case).where(Case.case_number == r.case_number, Case.officer_badge == r.officer_badge)
    )
    fields = r.fields()
    if case is None:
        case = Case(
            case_number=r.case_number,
            officer_badge=r.officer_badge,
            imported_at=at,
            imported_by=actor,
            **fields,
        )
        session.add(case)
        session.flush()
        return case, "case.import"
    if all(getattr(case, k) == v for k, v in fields.items()):
        return case, None
    for k, v in fields.items():
        setattr(case, k, v)
    case.imported_at, case.imported_by = at, actor
    return case, "case.update"


def _json(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def _badge_unknown(session: Session, badge: str) -> bool:
    return session.scalar(select(Officer.id).where(Officer.badge == badge)) is None
