"""The sweep scheduler inside ``dockd run`` and the weekly report it produces."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd import store
from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.daemon.scheduler import SweepScheduler, cron_trigger
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, Recording, SweepRun
from dockd.reports.weekly import run_weekly_report
from dockd.sweeps.runs import sweep_run
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.station import make_config

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _station(tmp_path: Path, clock: FixedClock, card: Recorder, extra: str) -> Iterator[Context]:
    cfg = make_config(tmp_path, extra)
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, card)
    assert run_ingest(Context(cfg, led, clock, alerts), card.root).ok
    yield Context(cfg, led, clock, alerts)
    led.close()


def _runs(led: Ledger) -> list[SweepRun]:
    with led.session() as s:
        return list(s.scalars(select(SweepRun).order_by(SweepRun.id)))


def _scheduler(ctx: Context) -> SweepScheduler:
    return SweepScheduler(ctx.config, ctx.ledger, ctx.clock, ctx.alerts)


@pytest.fixture
def sctx(tmp_path: Path, clock: FixedClock, card: Recorder) -> Iterator[Context]:
    yield from _station(
        tmp_path, clock, card, "[schedule]\nfixity = ''\nmisfire_grace_minutes = 90\n"
    )


def test_jobs_follow_the_config_in_the_station_time_zone(sctx: Context) -> None:
    sched = _scheduler(sctx)
    sched.start()
    try:
        jobs = {j.id: j for j in sched._scheduler.get_jobs()}
        # fixity = "" is off; the hand-over check is on by default
        assert sorted(jobs) == [
            "archive",
            "daily_report",
            "duties",
            "handover",
            "retention",
            "weekly_report",
        ]
        for job in jobs.values():
            assert job.coalesce is True and job.max_instances == 1
            assert job.misfire_grace_time == 90 * 60
        nxt = sched.next_runs()
        retention, weekly = nxt["retention"], nxt["weekly_report"]
        assert retention is not None and weekly is not None
        local = retention.astimezone(sctx.config.station.tz)
        assert (local.hour, local.minute) == (2, 30) and local.utcoffset() == timedelta(hours=8)
        weekly_local = weekly.astimezone(sctx.config.station.tz)
        assert (weekly_local.weekday(), weekly_local.hour) == (0, 7)  # crontab 1 = Monday
    finally:
        sched.shutdown()


def test_cron_weekdays_are_crontab_weekdays(config: Config) -> None:
    sunday = cron_trigger("0 7 * * 0", config)
    after = datetime(2026, 3, 16, tzinfo=UTC)  # a Monday
    fire = sunday.get_next_fire_time(None, after)
    assert (
        fire is not None and fire.astimezone(config.station.tz).strftime("%a %H:%M") == "Sun 07:00"
    )


def test_a_scheduled_run_records_itself_and_a_failure_raises_an_alert(
    sctx: Context, clock: FixedClock
) -> None:
    sched = _scheduler(sctx)
    sched.run_job("retention")
    assert [(r.kind, r.status) for r in _runs(sctx.ledger)] == [("retention", "ok")]
    with sweep_run(sctx, "retention"):  # a `dockd sweep retention` by hand is running
        sched.run_job("retention")  # skipped, not failed, no alert
    root = sctx.config.store.root
    root.rename(root.with_name("unmounted"))
    sched.run_job("fixity")
    with sctx.ledger.session() as s:
        kinds = sorted(a.kind for a in s.scalars(select(Alert)))
    assert kinds == ["fixity.store_unavailable", "sweep.failed"]
    assert [(r.kind, r.status) for r in _runs(sctx.ledger)] == [
        ("retention", "ok"),
        ("retention", "ok"),
        ("fixity", "failed"),
    ]


def _hashing(store_root: Path) -> Path | None:
    """A stored file this process has open: the sweep thread is hashing it right now."""
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
            regular = stat.S_ISREG(os.stat(fd).st_mode)
        except OSError:
            continue
        if regular and target.is_relative_to(store_root) and store.INCOMING not in target.parts:
            return target
    return None


def test_shutdown_stops_a_running_sweep_promptly(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    # 1 kB/s: each ~20 kB file would take ~20 s; the stop must not wait for that.
    for ctx in _station(tmp_path, clock, card, "[fixity]\nrate_mb_s = 0.001\n"):
        root = ctx.config.store.root
        sched = _scheduler(ctx)
        sched.start()
        try:
            sched.run_now("fixity")
            # Evidence, not a guess: the sweep has the first file open (and is held
            # back by the rate limit, mid-file), so the stop lands mid-file.
            deadline = time.monotonic() + 20
            while (opened := _hashing(root)) is None:
                assert time.monotonic() < deadline, "the fixity sweep never opened a stored file"
                time.sleep(0.02)
        finally:
            stopped = sched.shutdown(wait=True)
        assert stopped
        [run] = _runs(ctx.ledger)
        assert (run.kind, run.status) == ("fixity", "interrupted")
        summary = json.loads(run.summary or "{}")
        # the file it was reading counts as checked, and nothing was called ok half-read
        assert summary["checked"] == 1 and summary["ok"] == 0
        with ctx.ledger.session() as s:
            rows = list(s.scalars(select(Recording)))
        assert opened.relative_to(root).as_posix() in {r.store_path for r in rows}
        assert {(r.fixity_status, r.last_fixity_at) for r in rows} == {(None, None)}
        assert _hashing(root) is None  # and it let go of the file


def test_weekly_report_counts_the_week(tmp_path: Path, clock: FixedClock, card: Recorder) -> None:
    extra = f'[schedule]\nweekly_report_dir = "{tmp_path / "reports"}"\n'
    for ctx in _station(tmp_path, clock, card, extra):
        # Docked 2026-03-16 10:00 local, 27.5 h after the first clip: every file is late.
        clock.advance(7 * DAY)
        summary = run_weekly_report(ctx)
        assert (summary.start, summary.end) == (
            "2026-03-16T00:00:00+08:00",
            "2026-03-23T00:00:00+08:00",
        )
        assert (summary.ingested_files, summary.late_files, len(summary.late)) == (4, 4, 4)
        assert summary.late[0]["hours_late"] > 24
        assert summary.trashed == summary.purged == summary.holds_active == 0
        written = json.loads((tmp_path / "reports" / "weekly-2026-03-22.json").read_text())
        assert written == summary.as_dict()
        assert (
            "late:      4 file(s)" in (tmp_path / "reports" / "weekly-2026-03-22.txt").read_text()
        )
        assert [(r.kind, r.status) for r in _runs(ctx.ledger)] == [("weekly_report", "ok")]
        # A week later nothing new was ingested.
        clock.advance(7 * DAY)
        assert run_weekly_report(ctx).ingested_files == 0


def test_late_follows_the_configured_threshold(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    for ctx in _station(tmp_path, clock, card, "[reports]\nlate_ingest_hours = 48\n"):
        clock.advance(7 * DAY)
        summary = run_weekly_report(ctx, dry_run=True)
        assert (summary.ingested_files, summary.late_files) == (4, 0)
