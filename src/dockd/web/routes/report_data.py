"""The reports the web shows: every ``dockd report NAME`` and ``dockd sweep upcoming``.

Each is run through the same function the CLI runs (:func:`dockd.reports.catalog.run_report`,
:func:`dockd.sweeps.listings.upcoming`), with its period read in the station's time zone
as ``dockd report --from/--to`` reads it. A report whose rows name files also fills the
printable recording form (:mod:`dockd.evidence.form`) for those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from math import ceil
from typing import Any

from sqlalchemy.orm import Session

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.context import Context
from dockd.errors import UsageError
from dockd.evidence.access import files_by_id
from dockd.evidence.form import FormRow, describe
from dockd.ledger.db import Ledger
from dockd.reports.base import Period, Report
from dockd.reports.catalog import PAGED, REPORTS, run_report
from dockd.sweeps import listings

UPCOMING = "upcoming"
UPCOMING_DAYS = 30

#: name -> (the permission row, what it is)
CATALOG: dict[str, tuple[str, str]] = {
    **{name: ("report", desc) for name, (_, desc) in REPORTS.items()},
    UPCOMING: ("sweep upcoming", "deletions coming: files to trash (or held), trash to purge"),
}

#: The columns of each report that hold file ids (a list, for ``clock``).
FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "late": ("id",),
    "gaps": ("file_before", "file_after"),
    "untagged-files": ("id",),
    "badge-mismatch": ("id",),
    "deletions": ("id",),
    "clock": ("file_ids",),
    "access": ("file",),
    UPCOMING: ("file_id",),
}


def search_of(name: str, row: dict[str, Any]) -> dict[str, str] | None:
    """The search (``/search`` parameters) listing the files one row of a summary
    report counts; None for a report whose rows are no such summary. The badge and
    the device number are quoted: the whole of each, not ``DV-10`` for ``DV-1``; a row
    of footage with no officer asks for none (``""``), not for any."""
    if name == "untagged":
        return {
            "officer": f'"{row["officer"] or ""}"',
            "device": f'"{row["device"]}"',
            "from": row["day"],
            "to": row["day"],
            "flag": "untagged",
        }
    return None


def parse_day(value: str | None, config: Config, *, end: bool = False) -> datetime | None:
    """A date (or date-time) of a form, in the station's zone; a date as an end bound
    includes that whole day (as ``dockd report --to``)."""
    if not value:
        return None
    try:
        if len(value) == 10:
            d = date.fromisoformat(value) + timedelta(days=1 if end else 0)
            return datetime.combine(d, time.min, tzinfo=config.station.tz)
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{value!r} is not a date; use e.g. 2026-03-15") from None
    return ts.replace(tzinfo=config.station.tz) if ts.tzinfo is None else ts


@dataclass(frozen=True)
class Station:
    """What a report needs of the station."""

    config: Config
    ledger: Ledger
    clock: Clock


def run(name: str, session: Session, st: Station, start: str | None, end: str | None) -> Report:
    """The report ``name`` over ``[start, end]`` (days in the station's zone)."""
    period = Period(parse_day(start, st.config), parse_day(end, st.config, end=True))
    if name != UPCOMING:
        return run_report(name, session, st.config, period, st.clock.now())
    days, ctx = _upcoming(st, period)
    rows = listings.upcoming(ctx, days)
    if period.start is not None:
        rows = [r for r in rows if datetime.fromisoformat(r["when"]) >= period.start]
    return _listed(days, rows)


@dataclass(frozen=True)
class Page:
    """One page of a report's rows, and how many there are in all."""

    report: Report  # its rows: the page's
    total: int
    number: int  # the page given: the last one when the one asked for is past the end


def run_page(
    name: str,
    session: Session,
    st: Station,
    start: str | None,
    end: str | None,
    *,
    number: int,
    size: int,
) -> Page:
    """Page ``number`` of :func:`run`, ``size`` rows a page. The upcoming deletions
    decide the files of the page only (a large station's month lists 100,000 files),
    a report of :data:`~dockd.reports.catalog.PAGED` reads the page's rows; any other
    report is made whole, and its page cut from it."""
    period = Period(parse_day(start, st.config), parse_day(end, st.config, end=True))
    number = max(number, 1)
    if name in PAGED:
        skip = (number - 1) * size
        report, total = PAGED[name](session, st.config, period, st.clock.now(), skip, size)
        last = max(1, -(-total // size))
        if number > last:  # past the end (the rows grew fewer): the last page
            return run_page(name, session, st, start, end, number=last, size=size)
        return Page(report, total, number)
    if name != UPCOMING:
        report = run(name, session, st, start, end)
        number = min(number, max(1, -(-len(report.rows) // size)))
        rows = report.rows[(number - 1) * size : number * size]
        cut = Report(report.name, report.title, report.columns, rows)
        return Page(cut, len(report.rows), number)
    days, ctx = _upcoming(st, period)
    page = listings.upcoming_page(ctx, days, number=number, size=size, since=period.start)
    return Page(_listed(days, page.rows), page.total, page.number)


def _upcoming(st: Station, period: Period) -> tuple[int, Context]:
    """The days the upcoming deletions look ahead over ``period`` (30 when it has no
    end), and the context they are asked in."""
    now = st.clock.now()
    horizon = period.end or now + timedelta(days=UPCOMING_DAYS)
    days = max(0, ceil((horizon - now) / timedelta(days=1)))
    alerts = AlertSink(st.ledger, st.config.station.id, st.clock, st.config.alerts)
    return days, Context(st.config, st.ledger, st.clock, alerts, actor="web")


def _listed(days: int, rows: list[dict[str, Any]]) -> Report:
    return Report(UPCOMING, f"deletions in the next {days} days", listings.COLUMNS, rows)


def file_ids(report: Report) -> list[int]:
    """The files a report's rows name, in order, each once."""
    out: dict[int, None] = {}
    for row in report.rows:
        for col in FILE_COLUMNS.get(report.name, ()):
            value = row.get(col)
            values = value if isinstance(value, list | tuple) else [value]
            if isinstance(value, str):
                values = [v for v in value.split(",") if v.strip()]
            for v in values:
                if v is not None and str(v).strip().isdigit():
                    out[int(v)] = None
    return list(out)


def form_rows(session: Session, config: Config, ids: list[int]) -> list[FormRow]:
    """The recording form's lines for files of the ledger (no bag: no SHA-256, no path)."""
    return [
        FormRow(
            no=n,
            file_id=row.id,
            size_bytes=row.size_bytes,
            blake3=row.blake3,
            sha256="",
            bag_path="",
            **describe(session, row, config),
        )
        for n, row in enumerate(files_by_id(session, ids), start=1)
    ]
