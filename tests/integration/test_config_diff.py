"""``dockd config diff NEW`` on a real ingested station, and the daemon's reload.

The station's files were recorded on 2026-03-15 and ingested the day after; the
current policy keeps them ten years, so a new policy of 180 days (the legal floor)
makes them due at once whatever the day the test runs on, and one of twenty years
moves them later.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config, load_config
from dockd.context import Context
from dockd.daemon import scheduler as scheduler_mod
from dockd.daemon.scheduler import SweepScheduler
from dockd.daemon.service import reload_config
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, Recording
from dockd.policy import adapter, placing
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.logs import log_events, named
from tests.helpers.station import config_text

LONG = """
[retention.categories.routine]
days = 3650
[retention.categories.traffic]
days = 3650
"""


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


@dataclass
class Station:
    root: Path
    config: Path
    ledger: Ledger
    traffic: list[int]  # the files tagged with the category "traffic"
    routine: list[int]

    def write(self, name: str, extra: str) -> Path:
        path = self.root / name
        path.write_text(config_text(self.root, extra), encoding="utf-8")
        return path

    def diff(self, new: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
        capsys.readouterr()
        code = main(["-c", str(self.config), "config", "diff", str(new), "--format", "json"])
        out = capsys.readouterr().out
        assert code == 0, out
        found: dict[str, Any] = json.loads(out)
        return found


@pytest.fixture
def station(
    tmp_path: Path, clock: FixedClock, card: Recorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Station]:
    path = tmp_path / "dockd.toml"
    path.write_text(config_text(tmp_path, LONG), encoding="utf-8")
    cfg = load_config(path)
    led = open_ledger(cfg.ledger.url)
    register(led, clock, card)
    ctx = Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    assert run_ingest(ctx, card.root).ok
    with led.session() as s:
        rows = list(s.scalars(select(Recording).order_by(Recording.id)))
        assert len(rows) == 4
        for row in rows[:2]:
            row.category = "traffic"
            adapter.refresh_expiry(s, row, cfg.retention)
        ids = [r.id for r in rows]
    act_as(monkeypatch, add_account(led, "cfg-admin", "admin"))
    monkeypatch.setenv("COLUMNS", "500")  # whole paths in the tables
    yield Station(tmp_path, path, led, traffic=ids[:2], routine=ids[2:])
    led.close()


def test_a_shortened_category_lists_exactly_the_files_it_brings_forward(
    station: Station, clock: FixedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only traffic is shortened: routine stays ten years.
    new = station.write(
        "short.toml",
        "[retention.categories.routine]\ndays = 3650\n[retention.categories.traffic]\ndays = 180\n",
    )
    found = station.diff(new, capsys)
    r = found["retention"]
    assert r["files_checked"] == 4
    assert r["earlier"] == {"traffic": 2} and r["later"] == {}
    due = r["due_at_once"]
    assert [d["id"] for d in due] == station.traffic
    assert all(d["category"] == "traffic" and not d["held"] for d in due)
    assert all(d["expires_new"] < d["expires_now"] for d in due)
    changed = {c["key"]: (c["old"], c["new"]) for c in found["other"]}
    assert changed == {"retention.categories.traffic.days": (3650, 180)}
    assert found["schedule"] == [] and found["naming"] == {
        "added": [],
        "removed": [],
        "changed": [],
    }

    # The table says the same, with each file's path; a hold keeps one of them anyway.
    with station.ledger.session() as s:
        placing.place_hold(
            s,
            station="st-test",
            at=clock.now(),
            by="legal",
            reason="litigation",
            file_id=station.traffic[0],
        )
        paths = [s.get_one(Recording, i).store_path for i in station.traffic]
    capsys.readouterr()
    assert main(["-c", str(station.config), "config", "diff", str(new)]) == 0
    out = capsys.readouterr().out
    assert "2 file(s) due at once" in out
    for p in paths:
        assert p in out
    assert "held" in out
    assert [d["held"] for d in station.diff(new, capsys)["retention"]["due_at_once"]] == [
        True,
        False,
    ]


def test_a_lengthened_category_lists_the_moves_later_and_nothing_due(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    new = station.write(
        "long.toml",
        "[retention.categories.routine]\ndays = 7300\n"
        "[retention.categories.traffic]\ndays = 3650\n",
    )
    r = station.diff(new, capsys)["retention"]
    assert r["later"] == {"routine": 2} and r["earlier"] == {} and r["due_at_once"] == []


def test_schedule_naming_and_other_keys_are_listed(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    new = station.write(
        "sched.toml",
        LONG
        + '[schedule]\nretention = "0 4 * * *"\nfixity = ""\n'
        + "[[naming]]\n"
        + 'name = "serial-badge-time-seq"\n'
        + "pattern = '^(?P<serial>[A-Za-z0-9]+)_(?P<badge>\\d+)_"
        + "(?P<timestamp>\\d{14})_(?P<seq>\\d+)$'\n"
        + 'timestamp_format = "%Y%m%d%H%M%S"\n'
        + "[[naming]]\n"
        + 'name = "plain-time"\n'
        + "pattern = '^(?P<timestamp>\\d{14})$'\n"
        + 'timestamp_format = "%Y%m%d%H%M%S"\n',
    )
    old = load_config(station.config)
    found = station.diff(new, capsys)
    schedule = {c["key"]: (c["old"], c["new"]) for c in found["schedule"]}
    assert schedule["schedule.retention"] == (old.schedule.retention, "0 4 * * *")
    assert schedule["schedule.fixity"] == (old.schedule.fixity, "")
    assert found["naming"]["added"] == ["plain-time"]
    assert found["naming"]["removed"] == [r.name for r in old.naming][1:]
    assert found["retention"]["earlier"] == {} and found["retention"]["later"] == {}

    capsys.readouterr()
    assert main(["-c", str(station.config), "config", "diff", str(new)]) == 0
    out = capsys.readouterr().out
    assert "schedule.retention" in out and "0 4 * * *" in out and "plain-time" in out


def test_a_broken_new_config_is_refused_with_its_key_and_line(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    new = station.write("broken.toml", "[retention]\nminimum_days = 30\n")
    lineno = new.read_text().splitlines().index("minimum_days = 30") + 1
    capsys.readouterr()
    assert main(["-c", str(station.config), "config", "diff", str(new)]) == 78
    err = capsys.readouterr().err
    assert f"line {lineno}: retention.minimum_days" in err


# ------------------------------------------------------------------------ reload


class Holder:
    """What the session manager is to a reload: it hands its ctx to each new dock."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx


@pytest.fixture
def running(station: Station, clock: FixedClock) -> Iterator[tuple[Context, SweepScheduler]]:
    cfg = load_config(station.config)
    alerts = AlertSink(station.ledger, cfg.station.id, clock, cfg.alerts)
    ctx = Context(cfg, station.ledger, clock, alerts)
    sched = SweepScheduler(cfg, station.ledger, clock, alerts)
    sched.start()
    yield ctx, sched
    sched.shutdown(wait=True, timeout=10)


def _reload(
    ctx: Context, sched: SweepScheduler, path: Path, holder: Holder
) -> tuple[Config, AlertSink]:
    return reload_config(
        ctx.config,
        lambda: load_config(path),
        ledger=ctx.ledger,
        clock=ctx.clock,
        alerts=ctx.alerts,
        holders=(holder,),
        scheduler=sched,
    )


def test_reload_applies_a_new_schedule_to_the_running_scheduler(
    station: Station, running: tuple[Context, SweepScheduler]
) -> None:
    ctx, sched = running
    holder = Holder(ctx)
    new = station.write("new.toml", LONG + '[schedule]\nretention = "15 4 * * *"\narchive = ""\n')
    with log_events() as logs:
        cfg, _ = _reload(ctx, sched, new, holder)
    assert cfg.schedule.retention == "15 4 * * *"
    nxt = sched.next_runs()
    assert "archive" not in nxt
    retention = nxt["retention"]
    assert retention is not None
    local = retention.astimezone(cfg.station.tz)
    assert (local.hour, local.minute) == (4, 15)
    assert holder.ctx.config is cfg and sched.ctx.config is cfg
    (done,) = named(logs, "config reloaded")
    assert any(c.startswith("schedule.retention:") for c in done["changed"])


def test_a_broken_reload_keeps_the_old_config_and_raises_an_alert(
    station: Station, running: tuple[Context, SweepScheduler]
) -> None:
    ctx, sched = running
    holder = Holder(ctx)
    before = sched.next_runs()
    new = station.write("broken.toml", LONG + '[schedule]\nretention = "61 4 * * *"\n')
    lineno = new.read_text().splitlines().index('retention = "61 4 * * *"') + 1
    cfg, alerts = _reload(ctx, sched, new, holder)
    assert cfg is ctx.config and alerts is ctx.alerts
    assert holder.ctx is ctx and sched.ctx.config is ctx.config
    assert sched.next_runs() == before
    with station.ledger.read() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.kind == "config.reload_failed"))
    assert f"line {lineno}: schedule.retention" in alert.message


def test_a_reload_that_changes_what_cannot_change_live_is_refused_naming_the_keys(
    station: Station, running: tuple[Context, SweepScheduler]
) -> None:
    ctx, sched = running
    holder = Holder(ctx)
    text = config_text(station.root, LONG).replace(
        str(station.root / "store"), str(station.root / "elsewhere")
    )
    new = station.root / "moved.toml"
    new.write_text(text + '[schedule]\nretention = "15 4 * * *"\n', encoding="utf-8")
    cfg, _ = _reload(ctx, sched, new, holder)
    assert cfg is ctx.config and holder.ctx is ctx
    with station.ledger.read() as s:
        (alert,) = s.scalars(select(Alert).where(Alert.kind == "config.reload_failed"))
    assert "store.root" in alert.message and "schedule" not in alert.message


def test_a_sweep_in_progress_keeps_the_context_it_started_with(
    station: Station, running: tuple[Context, SweepScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, sched = running
    started, release = threading.Event(), threading.Event()
    seen: list[Config] = []
    done = threading.Semaphore(0)

    def slow(c: Context) -> None:
        started.set()
        assert release.wait(30)
        seen.append(c.config)
        done.release()

    monkeypatch.setitem(scheduler_mod.SWEEPS, "retention", slow)
    sched.run_now("retention")
    assert started.wait(30)
    holder = Holder(ctx)
    new = station.write("new.toml", LONG + '[schedule]\nretention = "15 4 * * *"\n')
    cfg, _ = _reload(ctx, sched, new, holder)
    assert cfg is not ctx.config
    release.set()
    assert done.acquire(timeout=30)
    assert seen[0] is ctx.config  # the run in progress finished on the config it had
    sched.run_job("retention")  # the next run, as the schedule starts it, takes the new one
    assert seen[1] is cfg
