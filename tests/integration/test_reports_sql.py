"""The footage reports computed in SQL (issue 16) at the edges the Python they replaced
got right: a delay of exactly the limit, a break measured from the latest end (not the
previous clip's), a local day across a daylight-saving change, the clock report's first
twenty files. On SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.config.station import StationConfig
from dockd.ledger.db import Ledger
from dockd.ledger.models import Device, Officer, Recording
from dockd.reports.base import Period, Report
from dockd.reports.catalog import run_report
from dockd.reports.footage import untagged_files_page
from tests.helpers.ledgers import BACKENDS
from tests.helpers.station import NOW

T0 = datetime(2026, 3, 14, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
_seq = count(1)


def _file(s: Session, start: datetime, end: datetime | None, **kw: Any) -> int:
    n = next(_seq)
    row = Recording(
        station="st-test",
        device_ref=kw.pop("device_ref", "DV-1"),
        device_id=kw.pop("device_id", 1),
        officer_id=kw.pop("officer_id", 1),
        kind=kw.pop("kind", "video"),
        recorded_start=start,
        recorded_end=end,
        time_source="container",
        size_bytes=1,
        blake3=f"{n:064x}",
        source_path=f"DCIM/{n}.MP4",
        store_path=f"x/{n}.MP4",
        ingested_at=kw.pop("ingested_at", NOW),
        **kw,
    )
    s.add(row)
    s.flush()
    return row.id


def _station(s: Session) -> None:
    s.add(Device(number="DV-1", registered_at=T0 - timedelta(days=30)))
    s.add(Officer(badge="012345", name="Li", created_at=T0 - timedelta(days=30)))
    s.flush()


def _report(
    ledger: Ledger, config: Config, name: str, extra: dict[str, Any] | None = None
) -> Report:
    cfg = config.model_copy(update=extra or {})
    with ledger.read() as s:
        return run_report(name, s, cfg, Period(), NOW)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_late_is_late_only_past_the_limit_to_the_microsecond(
    config: Config, ledger: Ledger
) -> None:
    limit = timedelta(hours=config.reports.late_ingest_hours)
    end = T0 + timedelta(minutes=10, microseconds=250)
    with ledger.session() as s:
        _station(s)
        _file(s, T0, end, ingested_at=end + limit)  # exactly the limit: in time
        over = _file(
            s, T0 + timedelta(minutes=1), end, ingested_at=end + limit + timedelta(0, 0, 1)
        )
        no_end = _file(s, end, None, ingested_at=end + limit * 2)
    rows = _report(ledger, config, "late").rows
    assert [(r["id"], r["delay_hours"]) for r in rows] == [
        (over, round(limit.total_seconds() / 3600, 2)),
        (no_end, round(2 * limit.total_seconds() / 3600, 2)),
    ]
    assert rows[1]["recorded_end"] is None and rows[1]["officer"] == "012345"


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_times_a_hair_before_a_whole_second_are_measured_exactly(
    config: Config, ledger: Ledger
) -> None:
    """SQLite's date functions keep milliseconds and round: 54.999513 s read as 55 s.
    A break 0.33 s over the limit from a clip that ends at 54.999513 s is a break (found
    in the ten-million-file bench: PostgreSQL listed it, SQLite did not), a file
    ingested 0.4 ms inside the late limit, at 59.9996 s, is in time, and clips begun
    0.5 and 0.3 ms before local midnight were recorded on that day."""
    gap = timedelta(minutes=config.reports.gap_minutes)
    late = timedelta(hours=config.reports.late_ingest_hours)
    end = T0 + timedelta(minutes=1, seconds=54, microseconds=999_513)
    with ledger.session() as s:
        _station(s)
        soon = end + 2 * gap  # ingested in time
        before = _file(s, T0, end, ingested_at=soon)
        after = _file(s, end + gap + timedelta(microseconds=329_184), None, ingested_at=soon)
        _file(
            s,
            T0 + 60 * gap,
            T0 + 61 * gap,
            ingested_at=T0 + 61 * gap + late - timedelta(microseconds=400),
            device_ref="DV-2",  # not a break of DV-1's
        )
        midnight = datetime(2026, 3, 15, 16, 0, tzinfo=UTC)  # 00:00 in Shanghai
        for device, hair in (("DV-3", 300), ("DV-4", 500)):
            for start in (midnight - timedelta(microseconds=hair), midnight + timedelta(hours=12)):
                _file(s, start, None, device_ref=device, ingested_at=start)
    rows = _report(ledger, config, "gaps").rows
    assert [(r["file_before"], r["file_after"]) for r in rows] == [(before, after)]
    assert _report(ledger, config, "late").rows == []
    devices = {r["device"]: r for r in _report(ledger, config, "usage-device").rows}
    assert (devices["DV-3"]["days_active"], devices["DV-4"]["days_active"]) == (2, 2)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_break_runs_from_the_latest_end_so_far(config: Config, ledger: Ledger) -> None:
    """A long clip with shorter ones inside it: the break after them runs from the long
    clip's end, and it is the file before (a later clip ending at the same time is not)."""
    m = timedelta(minutes=1)
    with ledger.session() as s:
        _station(s)
        long = _file(s, T0, T0 + 120 * m)
        _file(s, T0 + 30 * m, T0 + 31 * m)  # inside the long clip
        _file(s, T0 + 40 * m, T0 + 120 * m)  # ends with it
        _file(s, T0 + 150 * m, None, kind="photo")  # photos do not close a break
        after = _file(s, T0 + 180 * m, T0 + 190 * m, badge_hint="054321", officer_id=None)
        _file(s, T0 + 24 * 60 * m, T0 + 24 * 60 * m + m)  # next day: a night is no break
        other = _file(s, T0, T0 + m, device_ref="UNREG-9", device_id=None, officer_id=None)
        other_after = _file(
            s, T0 + 45 * m, T0 + 46 * m, device_ref="UNREG-9", device_id=None, officer_id=None
        )
    rows = _report(ledger, config, "gaps").rows
    assert [(r["device"], r["file_before"], r["file_after"], r["gap_minutes"]) for r in rows] == [
        ("DV-1", long, after, 60.0),
        ("UNREG-9", other, other_after, 44.0),
    ]
    assert rows[0]["gap_from"] == "2026-03-14T10:00:00+08:00"
    assert (rows[0]["officer"], rows[1]["officer"]) == ("054321", None)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_days_active_are_the_stations_local_days_across_a_clock_change(
    config: Config, ledger: Ledger
) -> None:
    """Berlin moves to summer time at 01:00 UTC on 2026-03-29: 21:30 UTC that day is
    23:30 local (the 29th), 22:30 UTC is 00:30 on the 30th."""
    berlin = {"station": StationConfig(id="st-test", timezone="Europe/Berlin")}
    at = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)
    with ledger.session() as s:
        _station(s)
        _file(s, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), None)  # 00:30 on the 29th (+01:00)
        _file(s, at, at + timedelta(minutes=5))
        _file(s, at + timedelta(hours=1), None, ingested_at=at + timedelta(days=3))
        _file(s, at, None, officer_id=None)  # no officer, no badge in the name
    officers = {r["officer"]: r for r in _report(ledger, config, "usage-officer", berlin).rows}
    assert officers["012345"]["days_active"] == 2
    assert officers["012345"]["files"] == 3
    assert officers["012345"]["late_files"] == 1
    assert officers["012345"]["late_share"] == 0.333
    assert officers["012345"]["last_recorded"] == "2026-03-30T00:30:00+02:00"
    assert (officers["(unknown)"]["files"], officers["(unknown)"]["name"]) == (1, None)
    (device,) = _report(ledger, config, "usage-device", berlin).rows
    assert (device["device"], device["files"], device["days_active"]) == ("DV-1", 4, 2)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_usage_over_decades_asks_only_the_days_with_files(config: Config, ledger: Ledger) -> None:
    """A recorder whose clock was reset wrote a file dated 1980; the usage reports of an
    open period still ask the ledger about the days that have files (one statement
    each, and one to find the next such day), not about every day of 46 years."""
    with ledger.session() as s:
        _station(s)
        _file(s, datetime(1980, 1, 1, 0, 0, 5, tzinfo=UTC), None)
        for h in (0, 1, 30, 31):
            _file(s, T0 + timedelta(hours=h), None, officer_id=None, badge_hint="054321")
    statements: list[str] = []

    def count_statement(*args: Any) -> None:
        statements.append(args[2])

    event.listen(ledger.engine, "before_cursor_execute", count_statement)
    try:
        officers = {r["officer"]: r for r in _report(ledger, config, "usage-officer").rows}
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count_statement)
    assert (officers["012345"]["files"], officers["012345"]["days_active"]) == (1, 1)
    assert officers["012345"]["first_recorded"] == "1980-01-01T08:00:05+08:00"
    assert (officers["054321"]["files"], officers["054321"]["days_active"]) == (4, 2)
    # the officers, the period's bounds, and per day with files its rows and where the
    # next file is (not after the last day): 2 + 3 x 2 - 1
    asked = [q for q in statements if q.lstrip().upper().startswith("SELECT")]
    assert len(asked) <= 7, asked


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_clock_report_names_the_first_twenty_suspect_files_in_time_order(
    config: Config, ledger: Ledger
) -> None:
    with ledger.session() as s:
        _station(s)
        # inserted latest first, so ids run against time
        suspect = [
            _file(s, T0 + timedelta(hours=h), None, clock_suspect=True) for h in range(25, 0, -1)
        ]
        _file(s, T0, None)
        future = _file(s, NOW + timedelta(days=1), None, clock_suspect=True, ingested_at=NOW)
    (row,) = _report(ledger, config, "clock").rows
    assert (row["suspect_files"], row["files"], row["future_dated"]) == (26, 27, 1)
    assert row["file_ids"] == suspect[::-1][:20]
    assert row["last_ingest"] == "2026-03-16T10:00:00+08:00"
    assert future not in row["file_ids"]


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_untagged_is_counted_per_officer_device_and_local_day(
    config: Config, ledger: Ledger
) -> None:
    """The untagged report says who left which day's footage without a case (R5):
    stored files only, a week after recording (``untagged_days``), the officer assigned
    else the badge in the file name; ``untagged-files`` lists exactly the files counted.
    T0 is 08:00 in Shanghai, so T0 + 17 h is 01:00 the next local day."""
    with ledger.session() as s:
        _station(s)
        day_one = [
            _file(s, T0, T0 + timedelta(minutes=10), duration_s=600.0),
            _file(s, T0 + timedelta(hours=1), None, duration_s=1800.0),
            _file(s, T0 + timedelta(hours=2), None),  # duration unknown: no hours
        ]
        _file(s, T0 + timedelta(hours=3), None, case_number="C-1")  # tagged
        _file(s, T0 + timedelta(hours=4), None, state="trashed", trashed_at=NOW)
        other = _file(s, T0, None, device_ref="DV-2", officer_id=None, badge_hint="054321")
        nobody = _file(s, T0 + timedelta(hours=5), None, officer_id=None)
        next_day = _file(s, T0 + timedelta(hours=17), None, duration_s=60.0)
        _file(s, NOW - timedelta(hours=12), None)  # not untagged_days old
    later = NOW + timedelta(days=1)  # T0 is then 3 days old: untagged_days = 2 below
    cfg = config.model_copy(
        update={"reports": config.reports.model_copy(update={"untagged_days": 2})}
    )
    with ledger.read() as s:
        summary = run_report("untagged", s, cfg, Period(), later).rows
        files = run_report("untagged-files", s, cfg, Period(), later).rows
    assert [
        (r["officer"], r["device"], r["day"], r["files"], r["hours_recorded"]) for r in summary
    ] == [
        (None, "DV-1", "2026-03-14", 1, 0.0),
        ("012345", "DV-1", "2026-03-14", 3, 0.67),
        ("012345", "DV-1", "2026-03-15", 1, 0.02),
        ("054321", "DV-2", "2026-03-14", 1, 0.0),
    ]
    mine = summary[1]
    assert (mine["first_recorded"], mine["last_recorded"]) == (
        "2026-03-14T08:00:00+08:00",
        "2026-03-14T10:00:00+08:00",
    )
    assert mine["age_days"] == (later - T0).days == 3
    assert sorted(r["id"] for r in files) == sorted([*day_one, other, nobody, next_day])
    assert sum(r["files"] for r in summary) == len(files)
    # a page (the web's) reads its own rows and the count: the list's slices
    with ledger.read() as s:
        for skip in range(0, len(files) + 2):
            page, total = untagged_files_page(s, cfg, Period(), later, skip, 2)
            assert (page.rows, total) == (files[skip : skip + 2], len(files)), skip


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_untagged_is_counted_from_its_partial_index_alone(config: Config, ledger: Ledger) -> None:
    """A month of a large station is hundreds of thousands of untagged files: each day's
    count is read from ``ix_files_untagged`` (only untagged stored files, with the
    columns counted), on SQLite without reading the table at all."""
    with ledger.session() as s:
        _station(s)
        for h in range(0, 2000):
            _file(s, T0 - timedelta(hours=h), None, case_number="C-1" if h % 3 else None)
        s.flush()
        s.execute(text("ANALYZE"))
    statements: list[tuple[str, Any]] = []

    def keep(*args: Any) -> None:
        statements.append((args[2], args[3]))

    event.listen(ledger.engine, "before_cursor_execute", keep)
    try:
        _report(ledger, config, "untagged")
    finally:
        event.remove(ledger.engine, "before_cursor_execute", keep)
    counted = [(q, p) for q, p in statements if "GROUP BY" in q]
    assert counted
    explain = "EXPLAIN QUERY PLAN " if ledger.dialect == "sqlite" else "EXPLAIN "
    with ledger.engine.connect() as conn:
        for q, params in counted:
            plan = [str(r[-1]) for r in conn.exec_driver_sql(explain + q, params)]
            assert any("ix_files_untagged" in step for step in plan), plan
            if ledger.dialect == "sqlite":
                assert any("COVERING INDEX ix_files_untagged" in step for step in plan), plan
