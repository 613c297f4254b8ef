"""The recorder's clock checked at dock (issue 11), on real clips with a fixed clock.

Each finding names its evidence; the session keeps the offset the recorder's time file
measured; the dock's alert names the checks and the retime command that corrects them;
the correction is audited. Recorders follow fixtures/make_recorder.py: file-name times
are Asia/Shanghai wall-clock times, the MP4's creation_time is UTC.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import parse_config
from dockd.context import Context
from dockd.dock import checks
from dockd.errors import ConfigError
from dockd.evidence import retime
from dockd.ingest.outcome import SessionResult
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, AuditEvent, DockSession, Recording
from fixtures.make_recorder import Recorder, make_recorder, write_mp4
from tests.helpers.ledgers import register
from tests.helpers.station import NOW, make_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = timedelta(days=1)

# The default rule for vendor "a" names, with a time file and the brand's firmware date.
RULE = r"""
[[naming]]
name = "serial-badge-time-seq"
pattern = '^(?P<serial>[A-Za-z0-9]+)_(?P<badge>\d+)_(?P<timestamp>\d{14})_(?P<seq>\d+)$'
timestamp_format = "%Y%m%d%H%M%S"
time_file = "SYSTEM/TIME.TXT"
time_file_format = "%Y-%m-%d %H:%M:%S"
reset_dates = [2024-05-10]
"""


@pytest.fixture
def ctx(tmp_path: Path, clock: FixedClock) -> Iterator[Context]:
    cfg = make_config(tmp_path, RULE)
    led = open_ledger(cfg.ledger.url)
    yield Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    led.close()


def _dock(ctx: Context, rec: Recorder) -> SessionResult:
    result = run_ingest(ctx, rec.root)
    assert result.ok, result
    checks.check_session(ctx, result, low_free_percent=5.0)
    return result


def _files(ctx: Context, session_id: int) -> dict[str, Recording]:
    with ctx.ledger.read() as s:
        rows = s.scalars(select(Recording).where(Recording.session_id == session_id))
        return {Path(r.source_path).name: r for r in rows}


def _checks(row: Recording) -> dict[str, str]:
    """check -> evidence of one file's findings."""
    return {f["check"]: f["evidence"] for f in json.loads(row.clock_findings or "[]")}


def _alerts(ctx: Context, kind: str) -> list[Alert]:
    with ctx.ledger.read() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == kind)))


def _verified(ctx: Context) -> None:
    with ctx.ledger.read() as s:
        result = audit.verify(s)
    assert result.ok, result.problems


def test_an_8_hour_offset_between_name_and_container_is_flagged_with_its_evidence(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    rec = make_recorder(tmp_path / "card", clips=2, extras=False)
    # The recorder writes its Beijing wall-clock time into the MP4 as if it were UTC.
    for r in rec.recordings:
        if r.kind == "video":
            assert r.recorded_at is not None
            wall = r.recorded_at.astimezone(SHANGHAI).replace(tzinfo=UTC)
            write_mp4(rec.root / r.relpath, start=wall, seconds=2.0)
    register(ctx.ledger, clock, rec)
    result = _dock(ctx, rec)

    files = _files(ctx, result.session_id)
    clip = files["ZFY2024000123_012345_20260315063000_0001.MP4"]
    assert clip.clock_suspect
    evidence = _checks(clip)["whole-hour-offset"]
    assert "+8h" in evidence
    assert "2026-03-15 14:30:00 +0800" in evidence  # the container's (UTC-labelled local)
    assert "2026-03-15 06:30:00 +0800" in evidence  # the file name's
    # The photo has only its name's time, which is right: nothing to doubt.
    photo = files["ZFY2024000123_012345_20260315063012_0001.JPG"]
    assert not photo.clock_suspect and photo.clock_findings is None

    (alert,) = _alerts(ctx, "device.clock_suspect")
    assert "whole-hour-offset (2)" in alert.message
    assert "+8h" in alert.message and "dockd recordings retime" in alert.message
    details = json.loads(alert.details or "{}")
    assert details["checks"] == {"whole-hour-offset": 2}
    assert set(details["findings"]) == {r.source_path for r in files.values() if r.kind == "video"}
    _verified(ctx)


def test_a_clock_running_behind_is_caught_by_the_last_dock_and_its_time_file(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    first = make_recorder(tmp_path / "monday", clips=1, extras=False)
    register(ctx.ledger, clock, first)
    monday = _dock(ctx, first)  # at NOW, 2026-03-16 10:00 in Shanghai
    assert not any(r.clock_suspect for r in _files(ctx, monday.session_id).values())

    # Two days later the recorder comes back; its clock has lost 30 days (a new battery
    # set to a wrong date). It writes that clock's time to SYSTEM/TIME.TXT when docked.
    clock.set(NOW + 2 * DAY)
    behind = timedelta(days=30)
    true_start = (clock.now() - timedelta(hours=5)).astimezone(SHANGHAI)
    card = make_recorder(tmp_path / "wednesday", start=true_start - behind, clips=2, extras=False)
    stamp = (clock.now() - behind).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")
    (card.root / "SYSTEM").mkdir()
    (card.root / "SYSTEM" / "TIME.TXT").write_text(stamp + "\r\n", encoding="ascii")
    wednesday = _dock(ctx, card)

    with ctx.ledger.read() as s:
        row = s.get_one(DockSession, wednesday.session_id)
        assert row.clock_offset_s == -behind.total_seconds()
    files = _files(ctx, wednesday.session_id)
    # (its photo is byte for byte Monday's: already in the store, not taken again)
    assert len(files) == 3 and all(r.clock_suspect for r in files.values())
    found = _checks(files["ZFY2024000123_012345_20260216050000_0001.MP4"])
    assert f"dock session {monday.session_id}" in found["before-last-dock"]
    assert "2026-03-16 10:00:00 +0800" in found["before-last-dock"]  # the last dock
    assert "at least 28 d" in found["before-last-dock"]
    assert "SYSTEM/TIME.TXT" in found["time-file"] and repr(stamp) in found["time-file"]
    assert "30 d behind" in found["time-file"]

    (alert,) = _alerts(ctx, "device.clock_suspect")
    command = f"dockd recordings retime --session {wednesday.session_id} --offset +720h"
    assert command in alert.message

    # The correction the alert names puts every file back on its true time, audited.
    with ctx.ledger.session() as s:
        rows = retime.select_files(s, retime.Selection(session_id=wednesday.session_id))
        done = retime.retime(
            s,
            ctx.config,
            rows,
            offset=retime.parse_offset("+720h"),
            to=None,
            reason="recorder clock 30 days behind (its time file)",
            at=clock.now(),
            actor="admin",
        )
    assert len(done) == 3
    after = _files(ctx, wednesday.session_id)
    clip = after["ZFY2024000123_012345_20260216050000_0001.MP4"]
    assert clip.recorded_start.astimezone(SHANGHAI) == true_start.replace(microsecond=0)
    assert not clip.clock_suspect and clip.time_source == "corrected"
    with ctx.ledger.read() as s:
        (event,) = [e for e in audit.history(s, "file", clip.id) if e.action == "file.retime"]
        assert "recorder clock 30 days behind" in event.details
    _verified(ctx)


def test_reset_dates_and_times_before_the_device_was_in_service(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    cards = {
        # A flat battery: the clock restarts at 2000-01-01 00:00.
        "flat": make_recorder(
            tmp_path / "flat",
            serial="ZFY2024000201",
            device_number="DV-0201",
            badge="020001",
            start=datetime(2000, 1, 1, 0, 5, tzinfo=SHANGHAI),
            clips=1,
            extras=False,
        ),
        # This brand falls back to its firmware's build date (the rule's reset_dates).
        "firmware": make_recorder(
            tmp_path / "firmware",
            serial="ZFY2024000202",
            device_number="DV-0202",
            badge="020002",
            start=datetime(2024, 5, 12, 9, 0, tzinfo=SHANGHAI),
            clips=1,
            extras=False,
        ),
        # Registered 2025-12-01, first assigned 2026-01-01: a clip of 2025-12-15.
        "unassigned": make_recorder(
            tmp_path / "unassigned",
            serial="ZFY2024000203",
            device_number="DV-0203",
            badge="020003",
            start=datetime(2025, 12, 15, 9, 0, tzinfo=SHANGHAI),
            clips=1,
            extras=False,
        ),
    }
    found: dict[str, dict[str, dict[str, str]]] = {}
    for name, card in cards.items():
        register(ctx.ledger, clock, card)
        result = _dock(ctx, card)
        found[name] = {n: _checks(r) for n, r in _files(ctx, result.session_id).items()}

    flat = found["flat"]["ZFY2024000201_020001_20000101000500_0001.MP4"]
    assert "2000-01-01" in flat["reset-date"]
    assert "registered 2025-12-01 08:00:00 +0800" in flat["before-registration"]
    firmware = found["firmware"]["ZFY2024000202_020002_20240512090000_0001.MP4"]
    assert "within 31 days after 2024-05-10" in firmware["reset-date"]
    unassigned = found["unassigned"]["ZFY2024000203_020003_20251215090000_0001.MP4"]
    assert set(unassigned) == {"before-assignment"}
    assert (
        "first assigned to an officer (2026-01-01 08:00:00 +0800)"
        in (unassigned["before-assignment"])
    )
    _verified(ctx)


def test_file_times_whole_hours_off_are_flagged_unless_the_mount_explains_them(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    rec = make_recorder(tmp_path / "card", clips=2, extras=False)
    clips = [r for r in rec.recordings if r.kind == "video"]
    for r, hours in zip(clips, (3, 8), strict=True):
        assert r.recorded_at is not None and r.duration_s is not None
        end = r.recorded_at + timedelta(seconds=r.duration_s)
        when = (end + timedelta(hours=hours)).timestamp()
        os.utime(rec.root / r.relpath, (when, when))
    register(ctx.ledger, clock, rec)
    result = _dock(ctx, rec)
    files = _files(ctx, result.session_id)

    three = _checks(files[Path(clips[0].relpath).name])
    assert "the file time (mtime)" in three["whole-hour-offset"]
    assert "+3h" in three["whole-hour-offset"]
    # FAT keeps Beijing wall-clock times that a mount may read as UTC: +8 h on every file
    # is the mount's doing, not the recorder's clock.
    assert _checks(files[Path(clips[1].relpath).name]) == {}


def test_a_time_file_that_makes_no_sense_is_noted_and_the_files_still_taken(
    ctx: Context, clock: FixedClock, tmp_path: Path
) -> None:
    rec = make_recorder(tmp_path / "card", clips=1, extras=False)
    (rec.root / "SYSTEM").mkdir()
    (rec.root / "SYSTEM" / "TIME.TXT").write_bytes(b"\xff\xfeclock lost\n")
    register(ctx.ledger, clock, rec)
    result = _dock(ctx, rec)
    assert result.count("stored") == 3
    with ctx.ledger.read() as s:
        row = s.get_one(DockSession, result.session_id)
        assert row.clock_offset_s is None
        assert row.notes is not None and "time file SYSTEM/TIME.TXT says" in row.notes
        assert "time_file_format" in row.notes
        assert not any(
            r.clock_suspect
            for r in s.scalars(select(Recording).where(Recording.session_id == result.session_id))
        )
        assert s.scalar(select(AuditEvent).where(AuditEvent.action == "session.end")) is not None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('time_file_format = "%Y"', "time_file_format is given but time_file is not"),
        ('time_file = "../etc/clock"', "must be a path inside the recorder"),
        ('reset_dates = ["soon"]', "reset_dates"),
    ],
)
def test_time_file_and_reset_date_settings_are_checked(
    tmp_path: Path, rule: str, message: str
) -> None:
    text = f"""
[[naming]]
name = "x"
pattern = '^(?P<device>[A-Z0-9-]+)_(?P<seq>\\d+)$'
{rule}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, source=str(tmp_path / "dockd.toml"), base=tmp_path)
    assert message in str(err.value)


def test_reset_dates_read_from_toml(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, "[ingest]\nclock_reset_dates = [2000-01-01, 2012-01-01]\n" + RULE)
    assert [d.isoformat() for d in cfg.ingest.clock_reset_dates] == ["2000-01-01", "2012-01-01"]
    (rule,) = cfg.naming
    assert rule.time_file == "SYSTEM/TIME.TXT"
    assert [d.isoformat() for d in rule.reset_dates] == ["2024-05-10"]
