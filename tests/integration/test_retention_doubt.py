"""Retention never outruns doubt: real clips, a fixed clock, the real sweep.

A recorder whose clock battery ran flat stamps its clips 2000-01-01; ingest flags
them clock-suspect. They must survive every sweep until the floor has passed since
they were ingested, and go after. A trusted clip recorded a year before it was
docked is kept the floor from its ingest too. ``dockd sweep upcoming`` says which
clock each decision was counted from, and the audit trail still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Recording
from dockd.sweeps import retention
from dockd.sweeps.listings import upcoming
from fixtures.make_recorder import make_recorder
from tests.helpers.ledgers import register
from tests.helpers.station import NOW, make_config

DAY = timedelta(days=1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _station(tmp_path: Path, clock: FixedClock, start: datetime, extra: str = "") -> Context:
    """A station that has ingested one real recorder whose clips start at ``start``."""
    card = make_recorder(tmp_path / "card", start=start, clips=2, extras=False)
    cfg = make_config(tmp_path, extra)
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    # In service, and worn, since well before any true footage: a 2000-01-01 stamp is
    # still a reset (registered 2025 at the latest, it cannot be true).
    register(led, clock, card, since=datetime(2025, 1, 1, tzinfo=UTC))
    result = run_ingest(Context(cfg, led, clock, alerts), card.root)
    assert result.ok and result.count("stored") >= 2
    return Context(cfg, led, clock, alerts, actor="sweeper")


def _rows(ctx: Context) -> list[Recording]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(Recording).order_by(Recording.id)))


def _verified(ctx: Context) -> None:
    with ctx.ledger.session() as s:
        result = audit.verify(s)
    assert result.ok, result.problems


@pytest.fixture
def flat_battery(tmp_path: Path, clock: FixedClock) -> Iterator[Context]:
    ctx = _station(tmp_path, clock, datetime(2000, 1, 1, 0, 0, tzinfo=SHANGHAI))
    yield ctx
    ctx.ledger.close()


def test_a_clip_stamped_2000_survives_every_sweep_until_the_floor_after_ingest(
    flat_battery: Context, clock: FixedClock
) -> None:
    ctx = flat_battery
    rows = _rows(ctx)
    assert all(r.recorded_start.year in (1999, 2000) for r in rows)
    assert all(r.clock_suspect for r in rows)
    assert {r.ingested_at for r in rows} == {NOW}

    # The first sweep, on the day of ingest, and every sweep until day 179: nothing goes.
    for day in (0, 1, 30, 100, 179):
        clock.set(NOW + day * DAY)
        report = retention.run_retention(ctx)
        assert report.status == "ok"
        assert not report.trashed, f"trashed on day {day}"
        assert all(r.state == "stored" for r in _rows(ctx))
    clock.set(NOW + 180 * DAY - timedelta(seconds=1))
    assert not retention.run_retention(ctx).trashed

    # `upcoming` shows it goes at ingest + 180 days, counted from the ingest.
    coming = upcoming(ctx, 1)
    assert sorted(d["file_id"] for d in coming) == [r.id for r in rows]
    for d in coming:
        assert d["action"] == "trash"
        assert d["counted_from"] == "ingested"
        assert "180 days from ingest (2026-03-16)" in d["rule"]
        assert "clock suspect" in d["rule"]
        assert d["when"] == (NOW + 180 * DAY).astimezone(SHANGHAI).isoformat()

    # On the day the floor has passed since ingest, the sweep takes them.
    clock.set(NOW + 180 * DAY)
    report = retention.run_retention(ctx)
    assert sorted(i.file_id for i in report.trashed) == [r.id for r in rows]
    assert all(r.state == "trashed" for r in _rows(ctx))
    _verified(ctx)


def test_a_trusted_clip_a_year_old_is_kept_the_floor_from_its_ingest(
    tmp_path: Path, clock: FixedClock
) -> None:
    recorded = NOW - 365 * DAY
    ctx = _station(tmp_path, clock, recorded)
    rows = _rows(ctx)
    assert not any(r.clock_suspect for r in rows)
    assert {r.time_source for r in rows} <= {"container", "filename"}
    # Routine is 180 days from recording: long past. The floor from ingest still holds.
    coming = upcoming(ctx, 180)
    assert {d["counted_from"] for d in coming} == {"ingested"}
    assert all("kept the floor (minimum_days = 180) from ingest" in d["rule"] for d in coming)
    for day in (0, 90, 179):
        clock.set(NOW + day * DAY)
        assert not retention.run_retention(ctx).trashed
    clock.set(NOW + 180 * DAY)
    assert len(retention.run_retention(ctx).trashed) == len(rows)
    _verified(ctx)
    ctx.ledger.close()


def test_a_trusted_clip_is_counted_from_its_recording_when_that_is_longer(
    tmp_path: Path, clock: FixedClock
) -> None:
    ctx = _station(tmp_path, clock, NOW - DAY, "[retention.categories.routine]\ndays = 200\n")
    clock.set(NOW + 190 * DAY)
    coming = upcoming(ctx, 30)
    assert coming and {d["counted_from"] for d in coming} == {"recorded"}
    assert all("200 days from recording (2026-03-15)" in d["rule"] for d in coming)
    assert all(d["when"].startswith("2026-10-01") for d in coming)  # 15 March + 200 days
    ctx.ledger.close()


def test_six_months_in_the_stations_calendar(tmp_path: Path, clock: FixedClock) -> None:
    """routine = 6 months: a clip recorded 1 July (station time) goes on 1 January."""
    july = datetime(2025, 7, 1, 10, 0, tzinfo=SHANGHAI)
    clock.set(july + 2 * DAY)
    extra = "[retention]\nminimum_months = 6\n[retention.categories.routine]\nmonths = 6\n"
    extra += "[retention.categories.evidence]\nmonths = 6\n"
    ctx = _station(tmp_path, clock, july, extra)
    rows = _rows(ctx)
    assert not any(r.clock_suspect for r in rows)
    # 180 days after 1 July would be 28 December: still kept then.
    clock.set(july + 181 * DAY)
    assert not retention.run_retention(ctx).trashed
    coming = upcoming(ctx, 10)
    assert coming and all("6 months from recording (2025-07-01)" in d["rule"] for d in coming)
    assert all(d["when"].startswith("2026-01-0") for d in coming)
    # Ingested 3 July: the floor of 6 months from ingest ends 3 January 10:00+.
    clock.set(datetime(2026, 1, 3, 10, 0, tzinfo=SHANGHAI) - timedelta(minutes=1))
    assert not retention.run_retention(ctx).trashed
    clock.set(datetime(2026, 1, 3, 10, 10, tzinfo=SHANGHAI))
    assert len(retention.run_retention(ctx).trashed) == len(rows)
    _verified(ctx)
    ctx.ledger.close()


def test_a_changed_policy_recomputes_stored_expiry(tmp_path: Path, clock: FixedClock) -> None:
    ctx = _station(tmp_path, clock, NOW - DAY)
    retention.run_retention(ctx)
    before = {r.id: r.expires_at for r in _rows(ctx)}
    ctx.ledger.close()
    cfg = make_config(tmp_path, "[retention.categories.routine]\nmonths = 7\n")
    led = open_ledger(cfg.ledger.url)
    ctx2 = Context(cfg, led, clock, AlertSink(led, "st-test", clock, cfg.alerts))
    report = retention.run_retention(ctx2)
    assert report.refreshed == len(before)
    after = {r.id: r.expires_at for r in _rows(ctx2)}
    for fid, old in before.items():
        new = after[fid]
        assert old is not None and new is not None
        assert new > old + 20 * DAY
        assert new.astimezone(UTC).month == 10  # recorded 15 March + 7 months
    led.close()
