"""Search the footage as the web view asks it: by officer (name or badge, partial), device,
station, case (partial), category, hold, flags and recording time; sorted, paged, counted.

Everything is selected in SQL, on SQLite and PostgreSQL alike: the filters, the count,
the page and the flags of each row. The flags mean what the reports mean: *late* and
*untagged* as :mod:`dockd.reports.footage` counts them, *gap* a clip that follows a
break of more than ``gap_minutes`` in its device's footage of the same local day (the
clip the gaps report names as ``file_after``), *held* an active hold covering the file
as :func:`dockd.policy.holds.covers` decides it. Times are aware datetimes; turning the
station's local dates of a form into them is the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session, aliased

from dockd.config import Config
from dockd.errors import UsageError
from dockd.ledger.leads import CLIPS
from dockd.ledger.models import FileState, Hold, Officer, Recording
from dockd.policy.holds import HoldScope
from dockd.policy.retention import UNTRUSTED_SOURCES
from dockd.reports.base import columns, dialect_of, exceeds, local_day
from dockd.reports.footage import late_sql, untagged_sql

R = Recording


class Flag(StrEnum):
    """What a recording may be flagged with; the search finds files carrying all asked."""

    LATE = "late"
    GAP = "gap"
    UNTAGGED = "untagged"
    CLOCK_SUSPECT = "clock-suspect"
    BADGE_MISMATCH = "badge-mismatch"
    PROBE_FAILED = "probe-failed"
    QUARANTINED = "quarantined"


FLAGS: tuple[str, ...] = tuple(Flag)
# The columns a search may be sorted by (a whitelist: the name comes from a URL).
SORTS = columns("recorded ingested device officer case category duration size station id")
MAX_PAGE_SIZE = 500
# Where the local days of gaps are worked out from, before the clips asked about: a
# break only counts within one local day, and a lead further back is on another day.
_GAP_LOOKBACK = timedelta(days=2)


@dataclass(frozen=True)
class SearchQuery:
    """One search; every field left at its default does not filter.

    ``officer`` and ``case`` match a part of the badge, the officer's name or the case
    number, whatever the case of the letters; ``device`` a part of the device number;
    each of them in double quotes matches the whole of it, and ``officer=""`` the
    files no officer is known for (no assignment, no badge in the file name).
    ``start``/``end`` bound the recording start, ``[start, end)``. ``held``: True only
    files under an active hold, False only those under none. ``flags``: files carrying
    every flag named.
    """

    officer: str | None = None
    device: str | None = None
    station: str | None = None
    case: str | None = None
    category: str | None = None
    held: bool | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    start: datetime | None = None
    end: datetime | None = None
    include_removed: bool = False  # trashed and purged files too
    sort: str = "recorded"
    descending: bool = True
    page: int = 1
    page_size: int = 50

    def __post_init__(self) -> None:
        unknown = sorted(set(self.flags) - set(FLAGS))
        if unknown:
            raise UsageError(f"no flag named {', '.join(unknown)}; choose from {', '.join(FLAGS)}")
        if self.sort not in SORTS:
            raise UsageError(f"cannot sort by {self.sort!r}; choose one of {', '.join(SORTS)}")
        if self.page < 1:
            raise UsageError(f"page {self.page} does not exist; pages count from 1")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise UsageError(f"a page holds 1 to {MAX_PAGE_SIZE} rows, not {self.page_size}")
        for name in ("start", "end"):
            ts = getattr(self, name)
            if ts is not None and ts.tzinfo is None:
                raise UsageError(f"search {name} {ts!r} has no time zone; give an aware time")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("the end of the search period must be after its start")


@dataclass(frozen=True)
class SearchRow:
    """One recording found: what a results table shows of it."""

    id: int
    station: str
    kind: str
    recorded_start: datetime
    recorded_end: datetime | None
    time_source: str
    duration_s: float | None
    ingested_at: datetime
    device: str
    officer: str | None  # the assigned officer's badge, else the badge in the file name
    officer_name: str | None
    case_number: str | None
    category: str | None
    access_class: str
    size_bytes: int
    state: str
    held: bool
    flags: tuple[str, ...]  # in the order of FLAGS


@dataclass(frozen=True)
class SearchPage:
    rows: list[SearchRow]
    total: int  # files matching, over all pages

    def pages(self, page_size: int) -> int:
        """How many pages the matches fill (at least one, empty as it may be)."""
        return max(1, -(-self.total // page_size))


# ------------------------------------------------------------------------ the conditions


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` holds ``text`` somewhere, whatever the case of the letters; a text in
    double quotes (``"DV-1"``) is the whole value, so that it is not also ``DV-10``."""
    text = text.strip()
    if len(text) > 2 and text[0] == text[-1] == '"':
        return column.ilike(_escape(text[1:-1]), escape="\\")  # type: ignore[no-any-return]
    return column.ilike(f"%{_escape(text)}%", escape="\\")  # type: ignore[no-any-return]


# The officer asked for as nothing in quotes: the files no officer is known for.
NO_OFFICER = '""'


def officer_matches(text: str) -> ColumnElement[bool]:
    """Files of an officer whose badge or name holds ``text`` (by assignment, else by the
    badge in the file name); :data:`NO_OFFICER` (``""``): files with neither."""
    if text.strip() == NO_OFFICER:
        return func.coalesce(_badge(), "") == ""
    o = aliased(Officer)
    ids = select(o.id).where(or_(contains(o.badge, text), contains(o.name, text)))
    return or_(
        R.officer_id.in_(ids),
        and_(R.officer_id.is_(None), contains(R.badge_hint, text)),
    )


def _assigned_badge() -> ColumnElement[str | None]:
    o = aliased(Officer)
    return select(o.badge).where(o.id == R.officer_id).correlate(R).scalar_subquery()


def _badge() -> ColumnElement[str | None]:
    return func.coalesce(func.nullif(_assigned_badge(), ""), R.badge_hint)


def held_sql(now: datetime) -> ColumnElement[bool]:
    """An active hold covers the file at ``now``: :func:`dockd.policy.holds.covers` in SQL."""
    h = Hold
    trusted = and_(R.clock_suspect == false(), R.time_source.not_in(sorted(UNTRUSTED_SOURCES)))
    last = case((R.recorded_end > R.recorded_start, R.recorded_end), else_=R.recorded_start)
    in_window = or_(
        # an untrusted recording time: covered when ingested at or after the window's start
        and_(not_(trusted), or_(h.window_from.is_(None), R.ingested_at >= h.window_from)),
        and_(
            or_(h.window_from.is_(None), last >= h.window_from),
            or_(h.window_until.is_(None), R.recorded_start < h.window_until),
        ),
    )
    covers = or_(
        and_(h.scope == HoldScope.FILE, h.file_id == R.id),
        and_(
            h.scope == HoldScope.CASE,
            func.coalesce(R.case_number, "") != "",
            h.case_number == R.case_number,
        ),
        and_(h.scope == HoldScope.DEVICE, h.device_ref == R.device_ref, in_window),
        and_(
            h.scope == HoldScope.OFFICER,
            or_(h.officer_badge == R.badge_hint, h.officer_badge == _assigned_badge()),
            in_window,
        ),
        h.scope.not_in(list(HoldScope)),  # an unknown scope holds everything
    )
    return exists().where(_active(now), covers)


def _active(now: datetime) -> ColumnElement[bool]:
    return or_(Hold.released_at.is_(None), Hold.released_at > now)


def _flag_sql(flag: str, config: Config, dialect: str, now: datetime) -> ColumnElement[bool]:
    """The condition of every flag but the gap (which needs the span the search covers)."""
    if flag == Flag.LATE:
        return late_sql(config, dialect)
    if flag == Flag.UNTAGGED:
        return untagged_sql(config, now)
    if flag == Flag.CLOCK_SUSPECT:
        return R.clock_suspect == true()
    if flag == Flag.BADGE_MISMATCH:
        return R.badge_mismatch == true()
    if flag == Flag.PROBE_FAILED:
        return R.probe_failed == true()
    if flag == Flag.QUARANTINED:
        return or_(R.unregistered == true(), R.device_conflict == true())
    raise UsageError(f"no flag named {flag!r}")


def gap_sql(config: Config, dialect: str, span: tuple[datetime, datetime]) -> ColumnElement[bool]:
    """A clip that follows a break over ``gap_minutes`` since the latest end of its
    device's earlier clips (its lead, :mod:`dockd.ledger.leads`), on the same local
    day: a ``file_after`` of :func:`dockd.reports.footage.gaps`.

    ``span`` bounds the recording times of the clips asked about, from the two days
    before the first (a lead further back is on another day whatever the zone).
    """
    limit = timedelta(minutes=config.reports.gap_minutes)
    tz = config.station.tz
    return and_(
        R.lead_end < R.recorded_start,
        exceeds(R.recorded_start, R.lead_end, limit, dialect),
        local_day(R.lead_end, tz, dialect, span) == local_day(R.recorded_start, tz, dialect, span),
    )


def _conditions(
    session: Session, q: SearchQuery, config: Config, now: datetime
) -> tuple[list[ColumnElement[bool]], bool]:
    """The search's conditions, and whether any narrows more than the period does."""
    dialect = dialect_of(session)
    out: list[ColumnElement[bool]] = []
    if q.start is not None:
        out.append(R.recorded_start >= q.start)
    if q.end is not None:
        out.append(R.recorded_start < q.end)
    period = len(out)
    if q.officer and q.officer.strip():
        out.append(officer_matches(q.officer))
    if q.device and q.device.strip():
        out.append(contains(R.device_ref, q.device))
    if q.station:
        out.append(R.station == q.station)
    if q.case and q.case.strip():
        # by id from the case index, read past the untagged files (not every row)
        tagged = aliased(Recording)
        cases = select(tagged.id).where(
            tagged.case_number.is_not(None), contains(tagged.case_number, q.case)
        )
        out.append(R.id.in_(cases))
    if q.category:
        out.append(R.category == q.category)
    if q.held is not None:
        if session.scalar(select(exists().where(_active(now)))):
            out.append(held_sql(now) if q.held else not_(held_sql(now)))
        elif q.held:  # no hold is active: nothing to look for file by file
            out.append(false())
    for flag in sorted(q.flags - {Flag.GAP}):
        out.append(_flag_sql(flag, config, dialect, now))
    if Flag.GAP in q.flags:
        span = _span(session, q)
        if span is None:
            out.append(false())
        else:
            out.append(gap_sql(config, dialect, (span[0] - _GAP_LOOKBACK, span[1])))
    narrowed = len(out) > period
    if not q.include_removed:
        # Nearly every file is stored: with other conditions, ``|| ''`` keeps SQLite
        # off the state index (every row) for theirs.
        out.append((R.state + "" if narrowed else R.state) == FileState.STORED)
    return out, narrowed


def _span(session: Session, q: SearchQuery) -> tuple[datetime, datetime] | None:
    """The recording times the search covers: its period, its open ends closed by the
    ledger's first and last recording (None: an empty ledger)."""
    if q.start is not None and q.end is not None:
        return q.start, q.end
    lo, hi = session.execute(select(func.min(R.recorded_start), func.max(R.recorded_start))).one()
    if lo is None:
        return None
    return q.start or lo, q.end or hi


def _key(q: SearchQuery) -> Any:
    return {
        "recorded": R.recorded_start,
        "ingested": R.ingested_at,
        "device": R.device_ref,
        "officer": _badge(),
        "case": R.case_number,
        "category": R.category,
        "duration": R.duration_s,
        "size": R.size_bytes,
        "station": R.station,
        "id": R.id,
    }[q.sort]


def _order(q: SearchQuery, key: Any, id_: Any) -> list[Any]:
    if q.descending:
        return [key.desc().nulls_last(), id_.desc()]
    return [key.asc().nulls_last(), id_.asc()]


# ------------------------------------------------------------------------------ search

# The columns of a row shown under their own names (the others are worked out).
_AS_IS = columns(
    "id station kind recorded_start recorded_end time_source duration_s ingested_at"
    " case_number category access_class size_bytes state"
)


def search(session: Session, q: SearchQuery, config: Config, now: datetime) -> SearchPage:
    """One page of the files matching ``q`` and how many match in all.

    ``config`` gives the thresholds of late, gap and untagged and the station's zone
    (a gap's local day); ``now`` the moment holds are active at and untagged is
    counted to.
    """
    dialect = dialect_of(session)
    where, narrowed = _conditions(session, q, config, now)
    offset = (q.page - 1) * q.page_size
    if narrowed:
        # Few matches, seldom in the order asked: found once (their ids and sort keys),
        # counted and sorted, rather than counted, then found again walking the order's
        # index past rows that do not match.
        m = select(R.id, _key(q).label("key")).where(*where).cte("m").prefix_with("MATERIALIZED")
        hits = session.execute(
            select(m.c.id, func.count().over().label("total"))
            .order_by(*_order(q, m.c.key, m.c.id))
            .limit(q.page_size)
            .offset(offset)
        ).all()
        ids = [r.id for r in hits]
        total = hits[0].total if hits else None
    else:  # the period alone: the order's index walked to the page, the count apart
        ids = list(
            session.scalars(
                select(R.id).where(*where).order_by(*_order(q, _key(q), R.id))
                .limit(q.page_size).offset(offset)
            )
        )  # fmt: skip
        total = None
    if total is None:
        count = select(func.count()).select_from(R).where(*where)
        total = 0 if narrowed and offset == 0 else session.scalar(count) or 0
    if not ids:
        return SearchPage([], total)
    simple = [f for f in FLAGS if f != Flag.GAP]
    cols = [
        *(getattr(R, name) for name in _AS_IS),
        R.device_ref.label("device"),
        R.device_id,
        _badge().label("officer"),
        Officer.name.label("officer_name"),
        held_sql(now).label("held"),
        *(_flag_sql(f, config, dialect, now).label(f"f_{i}") for i, f in enumerate(simple)),
    ]
    join = select(*cols).outerjoin(Officer, R.officer_id == Officer.id)
    found = {r.id: r for r in session.execute(join.where(R.id.in_(ids)))}
    gaps = _gaps_among(session, config, [found[i] for i in ids])
    rows = []
    for i in ids:
        r = found[i]
        on = {f for n, f in enumerate(simple) if getattr(r, f"f_{n}")} | (
            {Flag.GAP} if i in gaps else set()
        )
        named = {k: getattr(r, k) for k in (*_AS_IS, "device", "officer", "officer_name")}
        flags = tuple(f for f in FLAGS if f in on)
        rows.append(SearchRow(**named, held=bool(r.held), flags=flags))
    return SearchPage(rows, total)


def _gaps_among(session: Session, config: Config, rows: Sequence[Any]) -> set[int]:
    """Which of a page's clips follow a gap: asked of their rows alone."""
    clips = [r for r in rows if r.kind in CLIPS]
    if not clips:
        return set()
    starts = [r.recorded_start for r in clips]
    span = (min(starts) - _GAP_LOOKBACK, max(starts))
    q = select(R.id).where(
        R.id.in_([r.id for r in clips]), gap_sql(config, dialect_of(session), span)
    )
    return set(session.scalars(q))
