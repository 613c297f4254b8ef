"""What every report is: a name, a title, columns and rows, built from the ledger alone.

A report is a function ``(session, config, period, now) -> Report``; the CLI
(``dockd report NAME``) renders it as a table, CSV or JSON. Times in rows are
ISO 8601 in the station's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    type_coerce,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from dockd.config import Config


@dataclass(frozen=True)
class Period:
    """``[start, end)``; either end open (None)."""

    start: datetime | None = None
    end: datetime | None = None

    def where(self, column: InstrumentedAttribute[datetime] | Any) -> list[ColumnElement[bool]]:
        """SQL conditions putting ``column`` inside the period."""
        out: list[ColumnElement[bool]] = []
        if self.start is not None:
            out.append(column >= self.start)
        if self.end is not None:
            out.append(column < self.end)
        return out


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


ReportFn = Callable[[Session, Config, Period, datetime], Report]
# A report's page: (session, config, period, now, rows to skip, rows to give) -> its rows, total
PagedFn = Callable[[Session, Config, Period, datetime, int, int | None], tuple[Report, int]]


def columns(names: str) -> tuple[str, ...]:
    """A report's columns in order, named once: ``columns("id device officer")``."""
    return tuple(names.split())


def iso(ts: datetime | None, tz: ZoneInfo) -> str | None:
    return ts.astimezone(tz).isoformat(timespec="seconds") if ts is not None else None


# ---------------------------------------------------------------- SQL the reports share
#
# The reports select and aggregate in the database, from its indexes, not over every
# row in Python. What SQL does not do alike on both ledgers lives here: time
# differences (SQLite keeps times as text) and the station's local day (SQLite knows
# no time zones). Both stay exact to the microsecond, as the Python they replace was.


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


Col = ColumnElement[Any] | InstrumentedAttribute[Any]  # a column or an expression


def _micros(ts: Col) -> ColumnElement[int]:
    """A SQLite ledger time (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC) as integer microseconds.

    The whole seconds are read from the text without its fraction: SQLite's date
    functions keep milliseconds and round, so ``strftime('%s')`` of ``...:54.999513``
    says 55.
    """
    text = type_coerce(ts, String)
    seconds = cast(func.strftime("%s", func.substr(text, 1, 19)), Integer)
    fraction = cast(func.substr(text + ".000000", 21, 6), Integer)
    return seconds * 1_000_000 + fraction


_DAY = timedelta(days=1)
_SLACK_DAYS = 1 / 86_400  # one second: far above julianday's rounding (to the ms)


def exceeds(later: Col, earlier: Col, limit: timedelta, dialect: str) -> ColumnElement[bool]:
    """``later - earlier > limit`` to the microsecond, as Python compares datetimes."""
    if dialect == "sqlite":
        # julianday first: one cheap call per side, less exact but with a second to
        # spare either way, so the exact comparison is made only for the rows within a
        # second of the limit (a row clearly over it is taken on julianday's word)
        days = func.julianday(later) - func.julianday(earlier)
        exact = _micros(later) - _micros(earlier) > limit // timedelta(microseconds=1)
        return and_(
            days > limit / _DAY - _SLACK_DAYS, or_(days > limit / _DAY + _SLACK_DAYS, exact)
        )
    diff: ColumnElement[Any] = later - earlier
    return diff > limit


def offsets(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[datetime, int]]:
    """``tz``'s UTC offsets over ``[lo, hi]``: ``[(from, seconds), ...]``, each change
    found to the microsecond (looked for day by day)."""

    def off(t: datetime) -> int:
        return int((t.astimezone(tz).utcoffset() or timedelta()).total_seconds())

    current = off(lo)
    out = [(lo, current)]
    t = lo
    while t < hi:
        step = min(t + timedelta(days=1), hi)
        if off(step) == current:
            t = step
            continue
        a, b = t, step  # off(a) == current != off(b)
        while b - a > timedelta(microseconds=1):
            mid = a + (b - a) // 2
            a, b = (mid, b) if off(mid) == current else (a, mid)
        current = off(b)
        out.append((b, current))
        t = b
    return out


def local_day_at(tz: ZoneInfo, t: datetime, until: datetime) -> tuple[date, datetime]:
    """The station's local date of ``t`` (as ``astimezone(tz).date()`` gives it) and the
    UTC time up to which every time from ``t`` on has that date and ``t``'s offset: the
    next local midnight or change of offset, at most ``until``.

    A report that counts days asks the database one such piece at a time: the local
    date is known for the piece, not computed per row (on SQLite a date function for
    every row of a month, and a sort of all of them to count them).
    """
    t, until = t.astimezone(UTC), until.astimezone(UTC)
    try:
        local = t.astimezone(tz)
        next_day = datetime.combine(local.date() + _DAY, time.min, tz)
        midnight = next_day.astimezone(UTC)
        if midnight <= t:  # t in an hour a clock change repeats across midnight
            midnight = next_day.replace(fold=1).astimezone(UTC)
    except OverflowError:  # the last day a datetime holds: the rest is one piece
        return t.date(), until
    steps = offsets(tz, t, min(midnight, until))
    end = steps[1][0] if len(steps) > 1 else min(midnight, until)
    return local.date(), end


def local_day(
    ts: Col, tz: ZoneInfo, dialect: str, span: tuple[datetime, datetime]
) -> ColumnElement[Any]:
    """The station's local date of ``ts``, as ``astimezone(tz).date()`` gives it.

    ``span`` bounds the times it is asked of: on SQLite the zone's offsets over it
    become a ``CASE`` (just one offset in most zones); PostgreSQL knows the zones.
    SQLite rounds a fraction of a second to the millisecond: a time from .9995 s on is
    given without its fraction (23:59:59.9997 is still that day); one before that
    rounds within its second (asking every row's whole seconds costs more).
    """
    if dialect != "sqlite":
        return cast(func.timezone(tz.key, ts), Date)
    steps = offsets(tz, *span)
    modifier: ColumnElement[Any] = literal(f"{steps[-1][1]:+d} seconds")
    if len(steps) > 1:
        whens = [
            (ts < start, literal(f"{off:+d} seconds")) for (_, off), (start, _) in pairwise(steps)
        ]
        modifier = case(*whens, else_=modifier)
    text = type_coerce(ts, String)
    whole = case((func.substr(text, 21, 4) >= "9995", func.substr(text, 1, 19)), else_=ts)
    return func.date(whole, modifier)
