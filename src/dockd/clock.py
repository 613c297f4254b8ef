"""The only place that asks the time, and where times are put in a zone cheaply.

Everything that needs "now" receives a :class:`Clock`; tests pass a
:class:`FixedClock` instead of patching modules. :class:`LocalTimes` gives the many
times of a report or a listing in the station's zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
Timespec = Literal["auto", "seconds"]


class Clock(Protocol):
    """Something that tells the current time, always timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock of this machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for tests and replays."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


class LocalTimes:
    """Times in the zone ``tz``, as ``astimezone(tz)`` gives them, at less cost: for
    the many times of one report or listing.

    ``astimezone`` into a zone looks its offset up for every time; a fixed offset
    does not. So ``tz`` is asked once per UTC day the times fall on: a day it keeps
    one offset through (nearly all of them) is converted with that fixed offset, a day
    it changes offset in with ``tz`` itself. The text is the same as ``astimezone(tz)``
    gives (the offset is the zone's); a time not in UTC (the ledger reads every time
    back in UTC) takes ``tz`` too.
    """

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self._days: dict[int, tzinfo] = {}

    def zone(self, ts: datetime) -> tzinfo:
        """A zone that gives ``ts`` the offset ``tz`` gives it."""
        if ts.tzinfo is not UTC:
            return self.tz
        day = ts.toordinal()
        found = self._days.get(day)
        if found is None:
            start = datetime.combine(date.fromordinal(day), datetime.min.time(), UTC)
            try:
                first = start.astimezone(self.tz).utcoffset()
                last = (start + (_DAY - _MICROSECOND)).astimezone(self.tz).utcoffset()
            except OverflowError:  # the first or last day a datetime holds: as it comes
                first, last = None, None
            found = timezone(first) if first is not None and first == last else self.tz
            self._days[day] = found
        return found

    def local(self, ts: datetime) -> datetime:
        """``ts.astimezone(tz)``, with the same offset and text (a fixed-offset zone
        where ``tz`` keeps one offset all that UTC day)."""
        return ts.astimezone(self.zone(ts))

    def iso(self, ts: datetime | None, timespec: Timespec = "seconds") -> str | None:
        """``ts.astimezone(tz).isoformat(timespec=timespec)``; None for None."""
        if ts is None:
            return None
        return ts.astimezone(self.zone(ts)).isoformat(timespec=timespec)

    def date(self, ts: datetime) -> date:
        """``ts.astimezone(tz).date()``."""
        return ts.astimezone(self.zone(ts)).date()
