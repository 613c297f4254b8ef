"""The station's time zone, kept in the ledger itself, so the SQL views can show local
times to an auditor with nothing but ``sqlite3 -readonly`` or psql.

``station_zones`` says which zone each station's files are read in (written by dockd
whenever a command opens the ledger with a config, so a changed ``[station]
timezone`` reaches the views). PostgreSQL converts with ``AT TIME ZONE``; SQLite has
no time zone database, so ``station_zone_offsets`` holds the zone's UTC offset for
every range between its transitions from 1970 to 2100 (from Python's zoneinfo), and
the views look the offset up by range (revision 0009). Daylight saving time is thus
right in either, not only for a zone without it like Asia/Shanghai.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import String, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from dockd.ledger.models import Base

log = structlog.get_logger(__name__)


class StationZone(Base):
    """Which zone a station's files are read in (one row per station)."""

    __tablename__ = "station_zones"
    station: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(String(19))  # UTC, YYYY-MM-DD HH:MM:SS


class StationZoneOffset(Base):
    """A zone's UTC offset from ``utc_from`` until ``utc_until`` (UTC text, as SQLite
    holds times, so the views compare them as text)."""

    __tablename__ = "station_zone_offsets"
    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    utc_from: Mapped[str] = mapped_column(String(19), primary_key=True)
    utc_until: Mapped[str] = mapped_column(String(19))
    offset_s: Mapped[int]


class _Ledger(Protocol):
    """What is written through: :class:`dockd.ledger.db.Ledger` (which imports this)."""

    def read(self) -> AbstractContextManager[Session]: ...

    def session(self) -> AbstractContextManager[Session]: ...


FIRST_YEAR = 1970
LAST_YEAR = 2100
#: Bounds of the first and last range: a time outside 1970-2100 takes the nearest offset.
BEFORE_ALL = "0001-01-01 00:00:00"
AFTER_ALL = "9999-12-31 23:59:59"
_TEXT = "%Y-%m-%d %H:%M:%S"  # how SQLite holds a UTC time (the fraction compares after)


def _offset(zone: ZoneInfo, at: datetime) -> int:
    offset = at.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first second in (lo, hi] whose offset differs from lo's (binary search)."""
    before = _offset(zone, lo)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if _offset(zone, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


def offset_ranges(zone_name: str) -> list[tuple[str, str, int]]:
    """``(utc_from, utc_until, offset_s)`` for ``zone_name``: its offset between each
    transition and the next, 1970 to 2100 (the ends open)."""
    zone = ZoneInfo(zone_name)
    at = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
    end = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC)
    ranges: list[tuple[str, str, int]] = []
    start, current = BEFORE_ALL, _offset(zone, at)
    step = timedelta(days=1)  # no zone changes its offset twice in a day
    while at < end:
        nxt = min(at + step, end)
        if _offset(zone, nxt) != current:
            change = _transition(zone, at, nxt)
            ranges.append((start, change.strftime(_TEXT), current))
            start, current = change.strftime(_TEXT), _offset(zone, change)
        at = nxt
    ranges.append((start, AFTER_ALL, current))
    return ranges


def _recorded(ledger: _Ledger, station: str, zone: str) -> bool:
    with ledger.read() as s:
        row = s.execute(
            text("SELECT zone FROM station_zones WHERE station = :station"), {"station": station}
        ).first()
        has_offsets = s.execute(
            text("SELECT 1 FROM station_zone_offsets WHERE zone = :zone LIMIT 1"), {"zone": zone}
        ).first()
    return row is not None and row.zone == zone and has_offsets is not None


def record_station_zone(ledger: _Ledger, station: str, zone: str, now: datetime) -> bool:
    """Write ``station``'s ``zone`` (and the zone's offsets) into the ledger unless it is
    there already; True when written. A ledger this process may only read (an
    auditor's CLI) is left as it is: the views then show the zone dockd last wrote."""
    try:
        if _recorded(ledger, station, zone):
            return False
        ranges = offset_ranges(zone)
        with ledger.session() as s:
            s.execute(text("DELETE FROM station_zones WHERE station = :s"), {"s": station})
            s.execute(
                text("INSERT INTO station_zones (station, zone, updated_at) VALUES (:s, :z, :t)"),
                {"s": station, "z": zone, "t": now.astimezone(UTC).strftime(_TEXT)},
            )
            s.execute(text("DELETE FROM station_zone_offsets WHERE zone = :z"), {"z": zone})
            s.execute(
                text(
                    "INSERT INTO station_zone_offsets (zone, utc_from, utc_until, offset_s) "
                    "VALUES (:z, :f, :u, :o)"
                ),
                [{"z": zone, "f": f, "u": u, "o": o} for f, u, o in ranges],
            )
    except SQLAlchemyError as exc:
        log.debug("station zone not written", station=station, zone=zone, error=str(exc))
        return False
    log.info("station zone written to the ledger", station=station, zone=zone)
    return True
