"""Reports on the footage itself: late ingest (R2), gaps (R12), untagged (R5),
usage per officer and device (R16), clock-suspect devices (R13), badge mismatches (R1).

Each is selected and aggregated by the database, the period first (``recorded_start``
is indexed), so a month of a ten-million-file ledger costs that month, not the ledger.
Python only formats the rows found, and sorts them where the order is Python's
(badges and device numbers sort as Python sorts strings, whatever the collation).
Rows are read as plain tuples through Core, not as ORM rows looked up by name: on a
month of thousands, that per-row cost is the report's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVarTuple
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.orm import Session

from dockd.clock import LocalTimes
from dockd.config import Config
from dockd.evidence import explanations
from dockd.ledger.leads import end_of
from dockd.ledger.models import Device, FileState, Officer, Recording
from dockd.reports.base import (
    Col,
    Period,
    Report,
    columns,
    dialect_of,
    exceeds,
    iso,
    local_day_at,
)

R = Recording
Ts = TypeVarTuple("Ts")


def _badge() -> ColumnElement[str]:
    """The assigned officer's badge, else the one in the file name (needs the officer join)."""
    return func.coalesce(func.nullif(Officer.badge, ""), R.badge_hint)


def _badges(session: Session) -> dict[int | None, str]:
    """Each officer's badge by id, those with one: :func:`_badge` in Python, as
    ``badges.get(officer_id, badge_hint)``."""
    return {i: b for i, b in session.execute(select(Officer.id, Officer.badge)) if b}


def ingest_delay(row: Recording) -> timedelta:
    """From the end of the recording (its start when the end is unknown) to its ingest."""
    return row.ingested_at - (row.recorded_end or row.recorded_start)


def is_late(row: Recording, config: Config) -> bool:
    return ingest_delay(row) > timedelta(hours=config.reports.late_ingest_hours)


def late_sql(config: Config, dialect: str) -> ColumnElement[bool]:
    """:func:`is_late` in SQL."""
    return exceeds(
        R.ingested_at, end_of(), timedelta(hours=config.reports.late_ingest_hours), dialect
    )


def late(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Files ingested more than ``late_ingest_hours`` after their recording ended (R2)."""
    tz = config.station.tz
    q = (
        select(
            R.id,
            R.device_ref,
            _badge().label("badge"),
            R.recorded_start,
            R.recorded_end,
            R.ingested_at,
            R.session_id,
            R.clock_suspect,
            R.case_number,
        )
        .outerjoin(Officer, R.officer_id == Officer.id)
        # the late ones picked first by what an index on (recorded_start, recorded_end,
        # ingested_at) holds, then only those rows read
        .where(
            R.id.in_(
                select(R.id).where(
                    *period.where(R.recorded_start), late_sql(config, dialect_of(session))
                )
            )
        )
        .order_by(R.recorded_start, R.id)
    )
    rows = [
        {
            "id": r.id,
            "device": r.device_ref,
            "officer": r.badge,
            "recorded_at": iso(r.recorded_start, tz),
            "recorded_end": iso(r.recorded_end, tz),
            "ingested_at": iso(r.ingested_at, tz),
            "delay_hours": round(
                (r.ingested_at - (r.recorded_end or r.recorded_start)).total_seconds() / 3600, 2
            ),
            "session_id": r.session_id,
            "clock_suspect": r.clock_suspect,
            "case": r.case_number,
        }
        for r in session.execute(q)
    ]
    return Report(
        "late",
        f"ingested more than {config.reports.late_ingest_hours:g} h after recording",
        columns(
            "id device officer recorded_at recorded_end ingested_at delay_hours session_id"
            " clock_suspect case"
        ),
        rows,
    )


def gaps(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Breaks longer than ``gap_minutes`` between consecutive clips of one device (R12).

    Only video and audio clips count; a break is measured from the latest end so
    far to the next start, and only within one local day (a night off duty is not
    an interrupted recording).

    Each clip keeps its lead (:mod:`dockd.ledger.leads`): the latest end among its
    device's earlier clips, and the clip that ended then. A break comes only before
    a clip that starts after its lead ends; those clips are read from their partial
    index (``ix_files_gap``), the ones over the limit leave the database as plain
    tuples. Whether both ends lie in one local day is Python's, and explanations are
    matched through an index by device and officer.
    """
    local = LocalTimes(config.station.tz)
    limit = timedelta(minutes=config.reports.gap_minutes)
    q = select(
        R.device_ref,
        R.recorded_start,
        R.id,
        R.lead_end,
        R.lead_id,
        R.officer_id,
        R.badge_hint,
        R.case_number,
    ).where(
        *period.where(R.recorded_start),
        R.lead_end < R.recorded_start,  # as ix_files_gap is built: read from it alone
        exceeds(R.recorded_start, R.lead_end, limit, dialect_of(session)),
    )
    badges = _badges(session)
    # sorted as Python sorts (device numbers whatever the collation); (device, start,
    # id) is unique, so nothing after it is ever compared
    found = sorted(session.connection().execute(q).all(), key=lambda r: (r[0], r[1], r[2]))
    ends = [r[3] for r in found if r[3] is not None]  # all: the index holds clips with a lead
    written = (
        explanations.gap_explanations(session, min(ends), max(r[1] for r in found)) if ends else []
    )
    index = explanations.Index(written)
    rows = []
    for dev, start, fid, lead_end, lead_id, officer, hint, case_no in found:
        if lead_end is None:
            continue
        # in the station's zone from here on, each time converted once
        since, until = local.local(lead_end), local.local(start)
        if since.date() != until.date():
            continue
        badge = badges.get(officer, hint)
        by = index.covering(device=dev, officer=badge, start=since, end=until)
        rows.append(
            {
                "device": dev,
                "officer": badge,
                "gap_from": since.isoformat(timespec="seconds"),
                "gap_to": until.isoformat(timespec="seconds"),
                "gap_minutes": round((until - since).total_seconds() / 60, 1),
                "file_before": lead_id,
                "file_after": fid,
                "case": case_no,
                "explained": explanations.standing(by).value,
                "explanation": by.id if by is not None else None,
            }
        )
    return Report(
        "gaps",
        f"breaks over {config.reports.gap_minutes:g} min between clips of one device, same day"
        " (explained: by an approved explanation, one pending approval, or no)",
        columns(
            "device officer gap_from gap_to gap_minutes file_before file_after case"
            " explained explanation"
        ),
        rows,
    )


def untagged_sql(config: Config, now: datetime) -> ColumnElement[bool]:
    """Stored footage still without a case ``untagged_days`` after it was recorded (R5)."""
    return and_(R.recorded_start <= _untagged_cutoff(config, now), _untagged())


def _untagged_cutoff(config: Config, now: datetime) -> datetime:
    return now - timedelta(days=config.reports.untagged_days)


def _untagged() -> ColumnElement[bool]:
    """Stored, without a case. Written as the partial index ``ix_files_untagged`` is
    built, constants and all (``models.INDEX_OPTIONS``), so that both databases see
    that it implies the index's predicate. ``|| ''``: not the case index, which SQLite
    would walk for the NULLs (most files)."""
    return and_(
        R.case_number.concat(literal_column("''")).is_(None),
        R.state == literal_column(f"'{FileState.STORED.value}'"),
    )


def untagged(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Who has footage still without a case ``untagged_days`` after it was recorded
    (R5): one row per officer, device and local day recorded, with the number of files,
    their hours and the oldest's age. The files themselves: ``untagged-files``.

    A large station's month is hundreds of thousands of such files; an auditor reads
    who left which shift untagged, and opens the files of one row (the web links each
    row to the search). Counted one local day at a time from ``ix_files_untagged``,
    which holds just these files and the columns counted: the table is not read.
    """
    tz = config.station.tz
    badges = _badges(session)
    q = select(
        R.device_ref,
        R.officer_id,
        R.badge_hint,
        func.count(),
        func.sum(func.coalesce(R.duration_s, 0.0)),
        func.min(R.recorded_start),
        func.max(R.recorded_start),
    ).group_by(R.device_ref, R.officer_id, R.badge_hint)
    found: dict[tuple[str, str, date], _Use] = {}
    due = _untagged_cutoff(config, now) + _TICK  # recorded up to the cutoff, included
    due_period = Period(period.start, due if period.end is None else min(period.end, due))
    for day, rows in by_local_day(session, tz, due_period, q, _untagged()):
        for device, officer_id, hint, files, seconds, first, last in rows:
            key = (badges.get(officer_id, hint) or "", device, day)
            use = found.get(key)
            if use is None:
                found[key] = _Use(files, float(seconds), 0, {day}, first, last)
            else:
                use.add(files, float(seconds), 0, day, first, last)
    rows_out = [
        {
            "officer": badge or None,
            "device": device,
            "day": day.isoformat(),
            "files": u.files,
            "hours_recorded": round(u.seconds / 3600, 2),
            "first_recorded": iso(u.first, tz),
            "last_recorded": iso(u.last, tz),
            "age_days": (now - u.first).days,
        }
        for (badge, device, day), u in sorted(found.items(), key=lambda kv: kv[0])
    ]
    return Report(
        "untagged",
        f"footage without a case {config.reports.untagged_days} day(s) after recording,"
        " per officer, device and day",
        columns("officer device day files hours_recorded first_recorded last_recorded age_days"),
        rows_out,
    )


def untagged_files(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Each file :func:`untagged` counts, one row a file (R5)."""
    return untagged_files_page(session, config, period, now, 0, None)[0]


def untagged_files_page(
    session: Session, config: Config, period: Period, now: datetime, skip: int, size: int | None
) -> tuple[Report, int]:
    """The rows ``skip`` to ``skip + size`` (None: to the end) of :func:`untagged_files`,
    and how many it has: a page of a month that lists 370,000 files at ten million
    reads its own rows and a count, both from ``ix_files_untagged``."""
    where = (*period.where(R.recorded_start), untagged_sql(config, now))
    q = (
        select(
            R.id,
            R.device_ref,
            _badge().label("badge"),
            R.kind,
            R.recorded_start,
            R.store_path,
        )
        .outerjoin(Officer, R.officer_id == Officer.id)
        .where(*where)
        .order_by(R.recorded_start, R.id)
        .offset(skip or None)
        .limit(size)
    )
    local = LocalTimes(config.station.tz)
    # plain rows through Core, unpacked: no ORM loading nor lookups by name per row
    rows = [
        {
            "id": id_,
            "device": device,
            "officer": badge,
            "kind": kind,
            "recorded_at": local.iso(start),
            "age_days": (now - start).days,
            "store_path": path,
        }
        for id_, device, badge, kind, start, path in session.connection().execute(q).all()
    ]
    total = len(rows)
    if size is not None:
        total = session.scalar(select(func.count()).select_from(R).where(*where)) or 0
    report = Report(
        "untagged-files",
        f"files without a case {config.reports.untagged_days} day(s) after recording",
        columns("id device officer kind recorded_at age_days store_path"),
        rows,
    )
    return report, total


def by_local_day(
    session: Session, tz: ZoneInfo, period: Period, q: Select[*Ts], *where: ColumnElement[bool]
) -> Iterator[tuple[date, Sequence[Row[*Ts]]]]:
    """``q`` asked for the files of ``period`` matching ``where`` one local day at a
    time (:func:`local_day_at`): each piece's rows, with its date.

    Each piece's rows are grouped by a small sort of their own, and the date is known
    for the piece rather than computed per row. The piece after each is the day of the
    next file: a period of decades (a recorder's clock reset to 1980, in an open
    period) costs its days with files. ``where`` holds no bound on the recording time:
    given one more than the piece's own, SQLite would walk the index from that bound
    to find each next file (the whole period, once per day).
    """
    lo, hi = session.execute(
        select(func.min(R.recorded_start), func.max(R.recorded_start)).where(
            *period.where(R.recorded_start), *where
        )
    ).one()
    if lo is None:
        return
    q = q.where(
        *where, R.recorded_start >= bindparam("day_start"), R.recorded_start < bindparam("day_end")
    )
    next_start = select(func.min(R.recorded_start)).where(
        *where, R.recorded_start >= bindparam("after"), R.recorded_start <= hi
    )
    conn = session.connection()
    start: datetime | None = lo
    while start is not None:
        day, end = local_day_at(tz, start, hi + _TICK)
        yield day, conn.execute(q, {"day_start": start, "day_end": end}).all()
        if end > hi:
            break
        start = conn.execute(next_start, {"after": end}).scalar()


_TICK = timedelta(microseconds=1)  # the least a time is later than another


_USAGE_COLS = columns(
    "files hours_recorded days_active late_files late_share first_recorded last_recorded"
)


def _usage(session: Session, config: Config, period: Period, key: Col) -> dict[str, dict[str, Any]]:
    """Per ``key``, over the period's files (all states): the usage columns (R16).

    Asked one local day at a time (:func:`by_local_day`): a key's active days are the
    days it has files in.
    """
    tz, dialect = config.station.tz, dialect_of(session)
    q = (
        select(
            key,
            func.count(),
            func.sum(func.coalesce(R.duration_s, 0.0)),
            func.sum(case((late_sql(config, dialect), 1), else_=0)),
            func.min(R.recorded_start),
            func.max(R.recorded_start),
        )
        .outerjoin(Officer, R.officer_id == Officer.id)
        .group_by(key)
    )
    found: dict[str, _Use] = {}
    for day, rows in by_local_day(session, tz, period, q):
        for k, files, seconds, late_files, first, last in rows:
            use = found.get(k)
            if use is None:
                found[k] = _Use(files, float(seconds), int(late_files), {day}, first, last)
            else:
                use.add(files, float(seconds), int(late_files), day, first, last)
    return {
        k: {
            "files": u.files,
            "hours_recorded": round(u.seconds / 3600, 2),
            "days_active": len(u.days),
            "late_files": u.late,
            "late_share": round(u.late / u.files, 3),
            "first_recorded": iso(u.first, tz),
            "last_recorded": iso(u.last, tz),
        }
        for k, u in found.items()
    }


@dataclass
class _Use:
    """One key's use over the days asked so far."""

    files: int
    seconds: float
    late: int
    days: set[date]
    first: datetime
    last: datetime

    def add(
        self, files: int, seconds: float, late: int, day: date, first: datetime, last: datetime
    ) -> None:
        self.files += files
        self.seconds += seconds
        self.late += late
        self.days.add(day)
        self.first, self.last = min(self.first, first), max(self.last, last)


_IDLE = {
    "files": 0,
    "hours_recorded": 0.0,
    "days_active": 0,
    "late_files": 0,
    "late_share": 0.0,
    "first_recorded": None,
    "last_recorded": None,
}


def usage_officer(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Per officer over the period: hours recorded, files, days active, share ingested late
    (R16). Every registered officer is listed, also those who recorded nothing."""
    badge = func.coalesce(func.nullif(_badge(), ""), "(unknown)")
    names: dict[str, str | None] = {
        b: name for b, name in session.execute(select(Officer.badge, Officer.name))
    }
    usage = _usage(session, config, period, badge)
    rows = [
        {"officer": k, "name": names.get(k), **usage.get(k, _IDLE)}
        for k in sorted(names.keys() | usage.keys())
    ]
    return Report("usage-officer", "use per officer", ("officer", "name", *_USAGE_COLS), rows)


def usage_device(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Per device over the period (R16); every registered device is listed."""
    models = {
        number: " ".join(x for x in (brand, model) if x)
        for number, brand, model in session.execute(
            select(Device.number, Device.brand, Device.model)
        )
    }
    usage = _usage(session, config, period, R.device_ref)
    rows = [
        {"device": k, "model": models.get(k, ""), **usage.get(k, _IDLE)}
        for k in sorted(models.keys() | usage.keys())
    ]
    return Report("usage-device", "use per device", ("device", "model", *_USAGE_COLS), rows)


LISTED_IDS = 20  # file ids the clock report names per device


def clock(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Devices whose clock looks wrong (R13): files flagged clock-suspect at ingest
    (time in the future, far from the dock time, or before the device was registered)."""
    tz = config.station.tz
    where = period.where(R.recorded_start)
    suspect = R.clock_suspect == true()

    def of_suspect(col: Any) -> Any:
        return case((suspect, col))

    per = (
        select(
            R.device_ref,
            func.sum(case((suspect, 1), else_=0)).label("suspect"),
            func.count().label("files"),
            func.sum(case((and_(suspect, R.recorded_start > R.ingested_at), 1), else_=0)).label(
                "future"
            ),
            func.min(of_suspect(R.recorded_start)).label("earliest"),
            func.max(of_suspect(R.recorded_start)).label("latest"),
            func.max(of_suspect(R.ingested_at)).label("last_ingest"),
        )
        .where(*where)
        .group_by(R.device_ref)
        .having(func.sum(case((suspect, 1), else_=0)) > 0)
    )
    ranked = (
        select(
            R.device_ref,
            R.id,
            func.row_number()
            .over(partition_by=R.device_ref, order_by=(R.recorded_start, R.id))
            .label("n"),
        )
        .where(*where, suspect)
        .subquery()
    )
    ids: dict[str, list[int]] = {}
    for dev, fid, _ in sorted(
        session.execute(select(ranked).where(ranked.c.n <= LISTED_IDS)), key=lambda r: (r[0], r[2])
    ):
        ids.setdefault(dev, []).append(fid)
    rows = [
        {
            "device": r.device_ref,
            "suspect_files": int(r.suspect),
            "files": r.files,
            "future_dated": int(r.future),
            "earliest_recorded_at": iso(r.earliest, tz),
            "latest_recorded_at": iso(r.latest, tz),
            "last_ingest": iso(r.last_ingest, tz),
            "file_ids": ids.get(r.device_ref, []),
        }
        for r in sorted(session.execute(per), key=lambda r: r.device_ref)
    ]
    return Report(
        "clock",
        "devices with clock-suspect footage",
        columns(
            "device suspect_files files future_dated earliest_recorded_at latest_recorded_at"
            " last_ingest file_ids"
        ),
        rows,
    )


def badge_mismatch(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Files whose name carries a badge other than the assigned officer's: a recorder
    lent to someone else (003 §20(二)), or an assignment entered wrong."""
    tz = config.station.tz
    q = (
        select(
            R.id,
            R.device_ref,
            _badge().label("badge"),
            R.badge_hint,
            R.recorded_start,
            R.session_id,
            R.source_path,
        )
        .outerjoin(Officer, R.officer_id == Officer.id)
        .where(*period.where(R.recorded_start), R.badge_mismatch == true())
        .order_by(R.recorded_start, R.id)
    )
    rows = [
        {
            "id": r.id,
            "device": r.device_ref,
            "assigned": r.badge,
            "badge_in_name": r.badge_hint,
            "recorded_at": iso(r.recorded_start, tz),
            "session_id": r.session_id,
            "source_path": r.source_path,
        }
        for r in session.execute(q)
    ]
    return Report(
        "badge-mismatch",
        "footage whose file name names another officer than the assignment",
        columns("id device assigned badge_in_name recorded_at session_id source_path"),
        rows,
    )
