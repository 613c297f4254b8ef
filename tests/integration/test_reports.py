"""Compliance reports (R2, R5, R7, R9, R12, R13, R16, R17) and the auditors' SQL views."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.evidence import access, cases
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit, registry
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Device, DockSession, Hold, Officer, Recording, SessionFailure
from dockd.reports.base import Period, Report
from dockd.reports.catalog import REPORTS, run_report
from fixtures.make_recorder import DEFAULT_START, Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.skips import need
from tests.helpers.station import NOW, make_config

# All on device DV-0001, badge 012345, local time. Recorder 1, 2026-03-15: clips 06:30:00,
# 06:31:02, 06:32:04 (2 s each), photo 06:30:12, audio 06:30:22 (1 s). Recorder 2: a clip at
# 08:30 (a 118-minute break) and its audio note at 08:30:22 (its photo is byte-identical to
# recorder 1's, so it is already present). Recorder 3: the same the next day at 07:00 (not a
# break: a new day). 9 files in all.


@pytest.fixture(scope="module")
def recs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recorder, Recorder, Recorder]:
    base = tmp_path_factory.mktemp("recs")
    r1 = make_recorder(base / "r1", clips=3, extras=False)
    r2 = make_recorder(base / "r2", start=DEFAULT_START + timedelta(hours=2), clips=1, extras=False)
    r3 = make_recorder(
        base / "r3",
        start=DEFAULT_START + timedelta(days=1, minutes=30),
        clips=1,
        extras=False,
    )
    return r1, r2, r3


def world(
    tmp_path: Path, clock: FixedClock, recs: tuple[Recorder, ...], extra: str = ""
) -> tuple[Config, Ledger, Context]:
    config = make_config(tmp_path, extra)
    ledger = open_ledger(config.ledger.url)
    ctx = Context(config, ledger, clock, AlertSink(ledger, "st-test", clock, config.alerts))
    register(ledger, clock, recs[0])
    # One dock at NOW takes the two days' footage: a later dock of older footage would
    # rightly be clock-suspect (timed before the device's last complete dock).
    docked = tmp_path / "docked"
    for rec in recs:
        shutil.copytree(rec.root, docked, dirs_exist_ok=True)
    assert run_ingest(ctx, docked).ok
    return config, ledger, ctx


@pytest.fixture
def station(
    tmp_path: Path, clock: FixedClock, recs: tuple[Recorder, Recorder, Recorder]
) -> Iterator[tuple[Config, Ledger, Context]]:
    """All three recorders ingested at NOW (2026-03-16 10:00 local): day one's footage is
    over 24 h old (late), day two's 07:00 clip only 3 h."""
    config, ledger, ctx = world(tmp_path, clock, recs)
    yield config, ledger, ctx
    ledger.close()


ALL_TIME = Period()


def report(ctx: Context, name: str, period: Period = ALL_TIME, now: datetime = NOW) -> Report:
    with ctx.ledger.session() as s:
        return run_report(name, s, ctx.config, period, now)


def ids_by_name(ctx: Context) -> dict[str, int]:
    with ctx.ledger.session() as s:
        return {Path(r.source_path).name: r.id for r in s.scalars(select(Recording))}


def test_late_ingest(station: tuple[Config, Ledger, Context], tmp_path: Path) -> None:
    _, ledger, ctx = station
    late = report(ctx, "late")
    names = {v: k for k, v in ids_by_name(ctx).items()}
    late_names = {names[r["id"]] for r in late.rows}
    assert len(late_names) == 7  # day one: 3 clips, photo, audio, the 08:30 clip and audio
    assert all("20260315" in n for n in late_names)
    first = min(late.rows, key=lambda r: r["id"])
    assert first["delay_hours"] > 24
    assert first["recorded_at"].endswith("+08:00")
    # Restricted to a period of recording times: only the 08:30 clip and its audio note.
    period = Period(datetime(2026, 3, 15, 0, 0, tzinfo=UTC), datetime(2026, 3, 16, tzinfo=UTC))
    assert len(report(ctx, "late", period).rows) == 2

    # The threshold is configurable: at 48 h nothing is late.
    relaxed = make_config(tmp_path, "[reports]\nlate_ingest_hours = 48\n")
    with ledger.session() as s:
        assert run_report("late", s, relaxed, Period(), NOW).rows == []


def test_gaps_between_clips_of_one_device(station: tuple[Config, Ledger, Context]) -> None:
    config, ledger, ctx = station
    gaps = report(ctx, "gaps")
    names = ids_by_name(ctx)
    assert len(gaps.rows) == 1
    (gap,) = gaps.rows
    assert gap["device"] == "DV-0001"
    assert gap["gap_from"] == "2026-03-15T06:32:06+08:00"
    assert gap["gap_to"] == "2026-03-15T08:30:00+08:00"
    assert gap["gap_minutes"] == pytest.approx(117.9, abs=0.1)
    assert gap["file_after"] == names["ZFY2024000123_012345_20260315083000_0001.MP4"]
    assert gap["file_before"] == names["ZFY2024000123_012345_20260315063204_0003.MP4"]

    tight = make_config(Path(config.store.root).parent, "[reports]\ngap_minutes = 0.5\n")
    with ledger.session() as s:
        rows = run_report("gaps", s, tight, Period(), NOW).rows
    # audio 06:30:23 -> clip 06:31:02 (39 s), clip -> clip (60 s), and the long break.
    assert [r["gap_minutes"] for r in rows] == pytest.approx([0.65, 1.0, 117.9], abs=0.06)


def test_untagged_after_n_days(station: tuple[Config, Ledger, Context]) -> None:
    _, ledger, ctx = station
    assert report(ctx, "untagged").rows == []  # nothing is a week old yet
    assert report(ctx, "untagged-files").rows == []
    later = NOW + timedelta(days=8)
    assert len(report(ctx, "untagged-files", now=later).rows) == 9
    by_day = {r["day"]: r["files"] for r in report(ctx, "untagged", now=later).rows}
    assert by_day == {"2026-03-15": 7, "2026-03-16": 2}
    names = ids_by_name(ctx)
    with ledger.session() as s:
        rows = cases.select_files(s, file_ids=list(names.values())[:3])
        cases.tag_files(s, rows, cases.Tag(case_number="U-1"), at=NOW, actor="t")
    untagged = report(ctx, "untagged-files", now=later)
    assert len(untagged.rows) == 6
    assert {r["age_days"] for r in untagged.rows} <= {8, 9}
    summary = report(ctx, "untagged", now=later).rows
    assert sum(r["files"] for r in summary) == 6
    assert {(r["officer"], r["device"]) for r in summary} == {("012345", "DV-0001")}


def test_usage_per_officer_and_device(station: tuple[Config, Ledger, Context]) -> None:
    _, ledger, ctx = station
    with ledger.session() as s:
        registry.add_officer(s, badge="777777", name="Idle", at=NOW, station="st-test", actor="a")
    officers = {r["officer"]: r for r in report(ctx, "usage-officer").rows}
    z = officers["012345"]
    assert z["name"] == "Zhang Wei"
    assert z["files"] == 9
    assert z["hours_recorded"] == pytest.approx((5 * 2 + 3) / 3600, abs=0.01)
    assert z["days_active"] == 2
    assert z["late_files"] == 7 and z["late_share"] == pytest.approx(7 / 9, abs=0.001)
    assert officers["777777"]["files"] == 0  # registered but recorded nothing: still listed

    devices = {r["device"]: r for r in report(ctx, "usage-device").rows}
    assert devices["DV-0001"]["files"] == 9 and devices["DV-0001"]["model"] == "Test BWC-1"
    day_two = Period(datetime(2026, 3, 15, 16, 0, tzinfo=UTC), None)
    devices = {r["device"]: r for r in report(ctx, "usage-device", day_two).rows}
    assert (devices["DV-0001"]["files"], devices["DV-0001"]["late_files"]) == (2, 0)


def test_holds_deletions_sessions_clock(
    station: tuple[Config, Ledger, Context], tmp_path: Path, clock: FixedClock
) -> None:
    _, ledger, ctx = station
    names = ids_by_name(ctx)
    fid = names["ZFY2024000123_012345_20260315063000_0001.MP4"]
    with ledger.session() as s:
        s.add_all(
            [
                Hold(
                    reason="complaint",
                    scope="file",
                    file_id=fid,
                    placed_at=NOW,
                    placed_by="chief",
                ),
                Hold(
                    reason="litigation",
                    scope="officer",
                    officer_badge="012345",
                    window_from=datetime(2026, 3, 14, tzinfo=UTC),
                    window_until=datetime(2026, 3, 15, tzinfo=UTC),
                    placed_at=NOW - timedelta(days=30),
                    placed_by="chief",
                    released_at=NOW - timedelta(days=20),
                    released_by="chief",
                    release_reason="settled",
                ),
            ]
        )
    holds = report(ctx, "holds").rows
    assert [(h["scope"], h["active"], h["files_covered"]) for h in holds] == [
        ("file", True, 1),
        ("officer", False, 5),
    ]
    recent = Period(NOW - timedelta(days=10), None)
    assert [h["scope"] for h in report(ctx, "holds", recent).rows] == ["file"]

    # A deletion as the retention sweep records it: a file.trash event carrying the state.
    other = names["ZFY2024000123_012345_20260315063102_0002.MP4"]
    with ledger.session() as s:
        row = s.get_one(Recording, other)
        row.state, row.trashed_at = "trashed", NOW
        audit.record_file_change(
            s, row, at=NOW, actor="retention", action="file.trash", changed=("state",)
        )
    (deleted,) = report(ctx, "deletions").rows
    assert deleted["id"] == other and deleted["state"] == "trashed"
    assert [e.split()[2] for e in deleted["events"]] == ["file.ingest", "file.trash"]
    with ledger.session() as s:
        assert audit.verify(s).ok

    with ledger.session() as s:
        sess = DockSession(
            station="st-test",
            device_ref="DV-0001",
            source="/media/x",
            started_at=NOW,
            ended_at=NOW,
            outcome="partial",
        )
        s.add(sess)
        s.flush()
        s.add(
            SessionFailure(
                session_id=sess.id,
                source_path="DCIM/a.MP4",
                disposition="failed",
                reason="copy failed: I/O error",
                at=NOW,
            )
        )
    (bad,) = report(ctx, "sessions").rows
    assert bad["outcome"] == "partial"
    assert bad["problems"] == ["DCIM/a.MP4: failed: copy failed: I/O error"]

    # A recorder whose clock runs three days ahead.
    fast = make_recorder(
        tmp_path / "fast",
        serial="ZFY2024000777",
        device_number="DV-0777",
        badge="012345",
        start=NOW + timedelta(days=3),
        clips=1,
        extras=False,
    )
    with ledger.session() as s:
        registry.add_device(
            s, number="DV-0777", serial="ZFY2024000777", at=NOW, station="st-test", actor="a"
        )
    run_ingest(ctx, fast.root)
    clocks = {r["device"]: r for r in report(ctx, "clock").rows}
    assert "DV-0777" in clocks
    assert clocks["DV-0777"]["future_dated"] == 3  # clip, photo, audio
    assert "DV-0001" not in clocks


def test_cli_reports_in_every_format(
    station: tuple[Config, Ledger, Context],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, ledger, _ = station
    ledger.close()
    (tmp_path / "dockd.toml").write_text(
        f"""
[station]
id = "st-test"
timezone = "Asia/Shanghai"
[store]
root = "{tmp_path / "store"}"
[ledger]
url = "sqlite:///{tmp_path / "ledger.sqlite3"}"
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("DOCKD_CONFIG", str(tmp_path / "dockd.toml"))
    for name in REPORTS:
        for fmt in ("table", "csv", "json"):
            assert main(["report", name, "--format", fmt]) == 0, (name, fmt)
    capsys.readouterr()
    assert main(["report", "late", "--from", "2026-03-15", "--to", "2026-03-15", "-f", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 7 and {r["device"] for r in rows} == {"DV-0001"}
    assert main(["report", "nonsense"]) == 64
    assert "choose one of" in capsys.readouterr().err


def test_sql_views_answer_without_the_cli(station: tuple[Config, Ledger, Context]) -> None:
    config, ledger, ctx = station
    names = ids_by_name(ctx)
    with ledger.session() as s:
        rows = cases.select_files(
            s, file_ids=[names["ZFY2024000123_012345_20260315063000_0001.MP4"]]
        )
        cases.tag_files(s, rows, cases.Tag(case_number="V-1"), at=NOW, actor="t")
    ledger.close()
    conn = sqlite3.connect(config.ledger.url.removeprefix("sqlite:///"))
    try:
        q = conn.execute
        assert q("SELECT COUNT(*) FROM v_files").fetchone() == (9,)
        assert q(
            "SELECT officer_badge, officer_name, device_brand FROM v_files LIMIT 1"
        ).fetchone() == (
            "012345",
            "Zhang Wei",
            "Test",
        )
        assert q("SELECT COUNT(*) FROM v_untagged_files").fetchone() == (8,)
        assert q("SELECT COUNT(*) FROM v_late_ingest").fetchone() == (7,)
        (delay,) = q("SELECT MAX(ingest_delay_hours) FROM v_late_ingest").fetchone()
        assert 27 < delay < 28
        assert q("SELECT COUNT(*), MIN(link_ok) FROM v_audit_links").fetchone()[1] == 1
        assert q("SELECT action FROM v_file_events WHERE action = 'file.tag'").fetchall() == [
            ("file.tag",)
        ]
        assert q("SELECT COUNT(*) FROM v_incomplete_sessions").fetchone() == (0,)
        for view in ("v_deletions", "v_active_holds", "v_clock_suspect_devices"):
            assert q(f"SELECT COUNT(*) FROM {view}").fetchone() == (0,)  # noqa: S608
        # Deleting an event shows as a broken link in v_audit_links.
        q("DELETE FROM audit_events WHERE id = 3")
        conn.commit()
        assert q("SELECT event_id FROM v_audit_links WHERE link_ok = 0").fetchall() == [(4,)]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on a Unix socket (run as 'postgres' when we are root)."""
    need(tools=("initdb", "pg_ctl"), why="the SQL views must work on PostgreSQL too")
    # Not under pytest's own 0700 temp dir: the server user must reach the socket and data.
    base = Path(tempfile.mkdtemp(prefix="dockd-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            need(tools=("a-postgres-user",), why="initdb refuses to run as root")
            raise
        prefix = ["runuser", "-u", "postgres", "--"]
        os.chown(base, pw.pw_uid, pw.pw_gid)
    data = base / "data"
    subprocess.run(
        [*prefix, "initdb", "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    opts = f"-k {base} -p 55433 -c listen_addresses= -c fsync=off"
    subprocess.run(
        [*prefix, "pg_ctl", "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={base}&port=55433"
    finally:
        subprocess.run(
            [*prefix, "pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.postgres
def test_views_and_reports_on_postgresql(postgres_url: str) -> None:
    """Same views, same columns on PostgreSQL; the chain verifies; reports run."""
    ledger = open_ledger(postgres_url)
    try:
        with ledger.session() as s:
            s.add(Device(number="DV-1", registered_at=NOW, brand="B", model="M"))
            s.add(Officer(badge="1", name="Zhang", created_at=NOW))
            s.flush()
            row = Recording(
                station="st",
                device_ref="DV-1",
                device_id=1,
                officer_id=1,
                kind="video",
                recorded_start=NOW - timedelta(hours=30),
                recorded_end=NOW - timedelta(hours=29),
                time_source="container",
                size_bytes=1,
                blake3="a" * 64,
                source_path="x.mp4",
                store_path="2026/03/14/x.mp4",
                ingested_at=NOW,
                clock_suspect=True,
            )
            s.add(row)
            s.flush()
            audit.record_file_change(
                s, row, at=NOW, actor="d", action="file.ingest", changed=audit.AUDITED_FILE_COLUMNS
            )
            cases.tag_files(s, [row], cases.Tag(case_number="C1"), at=NOW, actor="x")
            access.register(s, [row], access.Access("a", "why", "b"), action="file.view", at=NOW)
        with ledger.session() as s:
            q = s.execute
            (delay,) = q(text("SELECT ingest_delay_hours FROM v_late_ingest")).one()
            assert float(delay) == pytest.approx(29.0)
            assert q(text("SELECT officer_name, case_number FROM v_files")).one() == ("Zhang", "C1")
            assert q(
                text("SELECT accessed_by, reason, approved_by, restricted FROM v_access_register")
            ).one() == ("a", "why", "b", 0)
            assert q(text("SELECT MIN(link_ok), COUNT(*) FROM v_audit_links")).one() == (1, 3)
            assert q(text("SELECT suspect_files FROM v_clock_suspect_devices")).one() == (1,)
            for view in ("v_untagged_files", "v_deletions", "v_incomplete_sessions"):
                assert q(text(f"SELECT COUNT(*) FROM {view}")).scalar() == 0  # noqa: S608
            assert audit.verify(s).ok
            for name in REPORTS:
                run_report(name, s, Config(), Period(NOW - timedelta(days=3), None), NOW)
            assert len(run_report("late", s, Config(), ALL_TIME, NOW).rows) == 1
    finally:
        ledger.close()
