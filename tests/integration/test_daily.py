"""The daily reconciliation (issue 15, R3): each workday of the station's calendar,
every assigned recorder docked or not, on a real ledger with real ingests.

Two recorders are assigned; only one is docked on Tuesday 2026-03-17. The report of
that day lists the other with its officer, the scheduled run raises one alert for it
(not one per run), and the calendar's holidays and make-up workdays decide which day
the scheduled run reconciles.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.errors import ConfigError
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, Device, DockSession, SweepRun
from dockd.reports.base import Period
from dockd.reports.daily import daily, run_daily_report
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import make_config, write_config

TZ = ZoneInfo("Asia/Shanghai")
TUESDAY = datetime(2026, 3, 17, 18, 0, tzinfo=TZ)  # docked at the end of the shift
CALENDAR = """
[calendar]
weekends = ["sat", "sun"]
holidays = ["2026-03-17"]
workdays = ["2026-03-14"]
"""


@pytest.fixture(scope="module")
def recorders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recorder, Recorder]:
    root = tmp_path_factory.mktemp("recs")
    docked = make_recorder(root / "a", clips=2, extras=False)
    missing = make_recorder(
        root / "b", serial="ZFY2024000999", device_number="DV-0002", badge="067890", clips=1,
        extras=False,
    )  # fmt: skip
    return docked, missing


def _station(
    tmp_path: Path, recs: tuple[Recorder, Recorder], extra: str = ""
) -> Generator[Context]:
    """Both recorders registered and assigned; the first docked on Tuesday evening."""
    cfg = make_config(tmp_path, extra)
    clock = FixedClock(TUESDAY)
    led = open_ledger(cfg.ledger.url)
    ctx = Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    for rec in recs:
        register(led, clock, rec)
    assert run_ingest(ctx, recs[0].root).ok
    yield ctx
    led.close()


@pytest.fixture
def ctx(tmp_path: Path, recorders: tuple[Recorder, Recorder]) -> Iterator[Context]:
    yield from _station(tmp_path, recorders)


def _daily(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str, extra: str = ""
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(write_config(tmp_path, extra)), "report", "daily", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_workday_lists_the_device_that_did_not_dock_with_its_officer(
    ctx: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _daily(tmp_path, capsys, "--date", "2026-03-17", "--format", "json")
    assert code == 0, err
    rows = {r["device"]: r for r in json.loads(out)}
    assert sorted(rows) == ["DV-0001", "DV-0002"]
    docked, missing = rows["DV-0001"], rows["DV-0002"]
    assert (docked["docked"], docked["sessions"], docked["incomplete"]) == ("yes", 1, [])
    assert docked["officer"] == "012345"
    # Two clips, a photo and an audio note, all recorded on the 15th: more than 24 h late.
    assert (docked["files"], docked["late"], docked["officer_files"]) == (4, 4, 4)
    assert (missing["docked"], missing["officer"], missing["name"]) == ("no", "067890", "Zhang Wei")
    assert (missing["files"], missing["sessions"], missing["officer_files"]) == (0, 0, 0)
    assert {r["date"] for r in rows.values()} == {"2026-03-17"}

    code, out, _ = _daily(tmp_path, capsys, "--date", "2026-03-17", "--format", "csv")
    assert code == 0
    assert out.startswith("\ufeff")  # the BOM Excel needs to read it as UTF-8
    header, *lines = out.removeprefix("\ufeff").splitlines()
    assert header.split(",")[:5] == ["date", "device", "officer", "name", "docked"]
    assert any(line.startswith("2026-03-17,DV-0002,067890,Zhang Wei,no") for line in lines)

    code, out, _ = _daily(tmp_path, capsys, "--date", "2026-03-17")
    assert code == 0 and "daily" in out  # the table (its width is the terminal's)


def test_the_scheduled_run_alerts_once_per_device_not_docked(ctx: Context) -> None:
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.set(TUESDAY + timedelta(hours=14))  # Wednesday 08:00: Tuesday is done
    report = run_daily_report(ctx)
    assert {r["device"]: r["docked"] for r in report.rows} == {"DV-0001": "yes", "DV-0002": "no"}
    run_daily_report(ctx)  # the job runs again (a weekend, a restart): no second alert
    with ctx.ledger.read() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.kind == "dock.missed")))
        runs = list(s.scalars(select(SweepRun).where(SweepRun.kind == "daily_report")))
    assert len(alerts) == 1
    (alert,) = alerts
    assert (alert.subject, alert.occurrences) == ("DV-0002", 1)
    assert "067890" in alert.message and "2026-03-17" in alert.message
    assert [r.status for r in runs] == ["ok", "ok"]
    summary = json.loads(runs[0].summary or "{}")
    assert summary["date"] == "2026-03-17" and summary["not_docked"] == ["DV-0002 (067890)"]


def test_a_holiday_is_not_a_workday_and_a_make_up_saturday_is(
    tmp_path: Path, recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    station = _station(
        tmp_path, recorders, f'{CALENDAR}[schedule]\nweekly_report_dir = "{reports}"\n'
    )
    ctx = next(station)
    cal = ctx.config.calendar
    days = {d: cal.is_workday(datetime(2026, 3, d).date()) for d in range(13, 19)}
    assert days == {13: True, 14: True, 15: False, 16: True, 17: False, 18: True}

    code, _, err = _daily(tmp_path, capsys, "--date", "2026-03-17", extra=CALENDAR)
    assert code == 64 and "2026-03-17 is a holiday" in err
    code, _, err = _daily(tmp_path, capsys, "--date", "2026-03-15", extra=CALENDAR)
    assert code == 64 and "is a sun" in err
    code, out, err = _daily(tmp_path, capsys, "--date", "2026-03-14", "-f", "json", extra=CALENDAR)
    assert code == 0, err
    assert {(r["date"], r["device"], r["docked"]) for r in json.loads(out)} == {
        ("2026-03-14", "DV-0001", "no"),
        ("2026-03-14", "DV-0002", "no"),
    }
    # A week: the workdays alone, the holiday and Sunday left out.
    code, out, err = _daily(
        tmp_path, capsys, "--from", "2026-03-13", "--to", "2026-03-18", "-f", "json", extra=CALENDAR
    )
    assert code == 0, err
    assert sorted({r["date"] for r in json.loads(out)}) == [
        "2026-03-13",
        "2026-03-14",
        "2026-03-16",
        "2026-03-18",
    ]

    # Monday morning: the last completed workday is the make-up Saturday, not Friday.
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.set(datetime(2026, 3, 16, 8, 0, tzinfo=TZ))
    assert {r["date"] for r in run_daily_report(ctx).rows} == {"2026-03-14"}
    written = json.loads((reports / "daily-2026-03-14.json").read_text("utf-8"))
    assert written["summary"]["not_docked"] == ["DV-0001 (012345)", "DV-0002 (067890)"]
    # Wednesday morning: Tuesday is a holiday, so Monday is reconciled.
    ctx.clock.set(datetime(2026, 3, 18, 8, 0, tzinfo=TZ))
    assert {r["date"] for r in run_daily_report(ctx).rows} == {"2026-03-16"}
    station.close()


def test_the_calendar_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both a holiday and a make-up workday"):
        make_config(tmp_path, '[calendar]\nholidays = ["2026-10-01"]\nworkdays = ["2026-10-01"]\n')
    with pytest.raises(ConfigError, match="weekdays are"):
        make_config(tmp_path, '[calendar]\nweekends = ["saturday", "caturday"]\n')
    cfg: Config = make_config(tmp_path, '[calendar]\nweekends = ["fri"]\n')
    assert cfg.calendar.weekends == ("fri",)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_incomplete_sessions_and_open_alerts_on_both_ledgers(
    config: Config, recorders: tuple[Recorder, Recorder]
) -> None:
    """A session cut short the same day (as a crash leaves it, closed ``interrupted`` by
    recovery) is listed; the scheduled run's alert shows as the missed device's open alert."""
    clock = FixedClock(TUESDAY)
    led = open_ledger(config.ledger.url)
    ctx = Context(config, led, clock, AlertSink(led, config.station.id, clock, config.alerts))
    try:
        for rec in recorders:
            register(led, clock, rec)
        assert run_ingest(ctx, recorders[0].root).ok
        with led.session() as s:
            dev = s.scalar(select(Device).where(Device.number == "DV-0001"))
            assert dev is not None
            cut = DockSession(
                station=config.station.id, device_id=dev.id, device_ref="DV-0001",
                source="/media/recorder", started_at=TUESDAY + timedelta(minutes=30),
                ended_at=TUESDAY + timedelta(minutes=31), outcome="interrupted",
            )  # fmt: skip
            s.add(cut)
            s.flush()
            cut_id = cut.id
        clock.set(TUESDAY + timedelta(hours=14))
        run_daily_report(ctx)
        with led.read() as s:
            rows = {r["device"]: r for r in daily(s, config, Period(), clock.now()).rows}
    finally:
        led.close()
    assert rows["DV-0001"]["incomplete"] == [f"#{cut_id} interrupted"]
    assert (rows["DV-0001"]["sessions"], rows["DV-0001"]["files"]) == (2, 4)
    assert (rows["DV-0002"]["docked"], rows["DV-0002"]["open_alerts"]) == ("no", 1)


def test_sweep_daily_runs_the_reconciliation_now(
    ctx: Context, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dockd sweep daily`` (an admin, today's clock): neither recorder docked on the
    last workday, so both are listed, alerted, and the exit status is 1."""
    capsys.readouterr()
    code = main(["--config", str(write_config(tmp_path)), "sweep", "daily", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert {(r["device"], r["docked"]) for r in json.loads(out)} == {
        ("DV-0001", "no"),
        ("DV-0002", "no"),
    }
    with ctx.ledger.read() as s:
        assert len(list(s.scalars(select(Alert).where(Alert.kind == "dock.missed")))) == 2
