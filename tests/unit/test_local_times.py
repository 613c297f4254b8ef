"""The fast local times of reports and listings (:class:`dockd.clock.LocalTimes`) give
the text and the local day :func:`dockd.reports.base.iso` and ``astimezone`` give, also on the
days a zone changes its offset (daylight saving, a half-hour change, a zone's own
history), for times in UTC as the ledger reads them and for others."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from dockd.clock import LocalTimes
from dockd.reports.base import iso, local_day_at

ZONES = ["Asia/Shanghai", "Europe/Berlin", "Australia/Lord_Howe", "America/Santiago", "UTC"]


def _times() -> list[datetime]:
    """Every 29 min 13.000123 s over 2026 (each change of these zones falls in it), and
    the microseconds around each half hour, when the changes happen, every third day."""
    out = []
    t = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    while t < datetime(2027, 1, 1, tzinfo=UTC):
        out.append(t)
        t += timedelta(minutes=29, seconds=13, microseconds=123)
    for day in range(0, 365, 3):
        base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)
        for half in range(48):
            at = base + timedelta(minutes=30 * half)
            out += [at - timedelta(microseconds=1), at, at + timedelta(microseconds=1)]
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_local_times_are_the_zones_to_the_microsecond(zone: str) -> None:
    tz = ZoneInfo(zone)
    local = LocalTimes(tz)
    for t in _times():
        assert local.iso(t) == iso(t, tz), t
        assert local.iso(t, "auto") == t.astimezone(tz).isoformat(), t  # ledger query
        assert local.date(t) == t.astimezone(tz).date(), t


def _pieces(tz: ZoneInfo, lo: datetime, hi: datetime) -> list[tuple[date, datetime, datetime]]:
    """``[lo, hi]`` cut by :func:`local_day_at` as the usage reports walk it."""
    out, t = [], lo
    while t <= hi:
        day, end = local_day_at(tz, t, hi + timedelta(microseconds=1))
        assert end > t
        out.append((day, t, end))
        t = end
    return out


@pytest.mark.parametrize("zone", ZONES)
def test_local_days_cut_a_span_where_the_local_date_changes(zone: str) -> None:
    """The usage reports count an officer's active days by asking one piece of a day
    at a time: every time of the span is in exactly one piece, and that piece's date
    is the time's local date, also across each clock change."""
    tz = ZoneInfo(zone)
    times = sorted(_times())
    lo, hi = times[0] + timedelta(microseconds=7), times[-1]
    pieces = _pieces(tz, lo, hi)
    assert pieces[0][1] == lo and pieces[-1][2] == hi + timedelta(microseconds=1)
    for (_, _, end), (_, start, _) in pairwise(pieces):
        assert end == start  # no time left out, none in two pieces
    at = 0
    for t in times:
        if t < lo:
            continue
        while not pieces[at][1] <= t < pieces[at][2]:
            at += 1
        assert pieces[at][0] == t.astimezone(tz).date(), (t, pieces[at])
    days = {day for day, _, _ in pieces}
    assert len(days) == (hi.astimezone(tz).date() - lo.astimezone(tz).date()).days + 1


def test_a_local_day_of_a_time_given_in_another_zone_and_of_one_instant() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 01:00 on 2026-03-15 at +08:00 is 18:00 UTC on the 14th: 19:00 in Berlin, the 14th
    t = datetime(2026, 3, 15, 1, 0, tzinfo=timezone(timedelta(hours=8)))
    day, end = local_day_at(berlin, t, t + timedelta(days=3))
    assert day == date(2026, 3, 14) and end == datetime(2026, 3, 14, 23, 0, tzinfo=UTC)
    assert _pieces(berlin, t, t) == [(date(2026, 3, 14), t, t + timedelta(microseconds=1))]


def test_a_time_not_in_utc_and_none() -> None:
    tz = ZoneInfo("Europe/Berlin")
    local = LocalTimes(tz)
    # 02:30 on 2026-03-29 in UTC+05:00 is 21:30 UTC on the 28th: 22:30 in Berlin
    t = datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=5)))
    assert local.iso(t) == iso(t, tz) == "2026-03-28T22:30:00+01:00"
    assert local.date(t) == t.astimezone(tz).date()
    assert local.iso(None) is None
    # the day Berlin changes offset: still its offset, before and after the change
    change = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert local.iso(change - timedelta(microseconds=1)) == "2026-03-29T01:59:59+01:00"
    assert local.iso(change) == "2026-03-29T03:00:00+02:00"


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York"])
def test_the_first_and_last_days_a_time_can_be_on(zone: str) -> None:
    """A clock far off can stamp a file at the ends of the calendar: what ``iso`` can
    give there, the same; what it cannot (past year 9999 in the zone), the same error."""
    tz = ZoneInfo(zone)
    local = LocalTimes(tz)
    for t in (
        datetime(1, 1, 1, 12, tzinfo=UTC),
        datetime(1, 1, 2, tzinfo=UTC),
        datetime(9999, 12, 31, 10, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
    ):
        try:
            expected = iso(t, tz)
        except OverflowError:
            with pytest.raises(OverflowError):
                local.iso(t)
            continue
        assert local.iso(t) == expected
        assert local.date(t) == t.astimezone(tz).date()
