"""``dockd health`` as monitoring runs it: a docked, checked station is healthy; each fault
is named by its check, and the exit code says which it is."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import load_config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import open_ledger
from dockd.runtime import LOCK_NAME, FileLock, runtime_dir
from dockd.sweeps.fixity import run_fixity
from fixtures.make_recorder import make_recorder
from tests.helpers.ledgers import register
from tests.helpers.station import write_config

CHECKS = ["ledger", "store", "free_space", "daemon", "fixity", "alerts"]


@dataclass
class Station:
    config: Path
    ctx: Context
    clock: FixedClock
    daemon: FileLock

    def checked(self, days_ago: float = 0) -> None:
        """A fixity run that ended ``days_ago`` (minus five minutes)."""
        at = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
        ctx = self.ctx
        run_fixity(Context(ctx.config, ctx.ledger, FixedClock(at), ctx.alerts))


def health(capsys: pytest.CaptureFixture[str], config: Path) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()  # what the test's own steps logged
    code = main(["-c", str(config), "health"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def failed(report: dict[str, Any]) -> list[str]:
    return [name for name, check in report["checks"].items() if not check["ok"]]


def _free_floor(path: Path) -> float:
    """A floor this machine's disk is above, whatever else is on it."""
    vfs = os.statvfs(path)
    return max(0.0, math.floor(100.0 * vfs.f_bavail / vfs.f_blocks) - 1)


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    """Docked four days ago, its daemon running (the lock held); :meth:`Station.checked`
    runs its fixity sweep."""
    floor = _free_floor(tmp_path)
    config = write_config(tmp_path, f"\n[metrics]\nmin_free_percent = {floor}\n")
    cfg = load_config(config)
    clock = FixedClock(datetime.now(UTC) - timedelta(days=4))
    ledger = open_ledger(cfg.ledger.url)
    ctx = Context(cfg, ledger, clock, AlertSink(ledger, cfg.station.id, clock, cfg.alerts))
    rec = make_recorder(tmp_path / "rec", clips=1, extras=False)
    register(ledger, clock, rec)
    assert run_ingest(ctx, rec.root).outcome == "complete"
    daemon = FileLock(runtime_dir() / LOCK_NAME)
    assert daemon.try_acquire("dockd run")
    try:
        yield Station(config, ctx, clock, daemon)
    finally:
        daemon.release()
        ledger.close()


def test_a_docked_checked_station_with_its_daemon_is_healthy(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    station.checked()

    code, report = health(capsys, station.config)

    assert code == 0, report
    assert report["healthy"] is True
    assert report["station"] == "st-test"
    assert list(report["checks"]) == CHECKS
    assert all(check["ok"] and check["reason"] for check in report["checks"].values())
    assert f"PID {os.getpid()}" in report["checks"]["daemon"]["reason"]
    assert "writable" in report["checks"]["store"]["reason"]


def _store_gone(st: Station) -> None:
    root = st.ctx.config.store.root
    root.rename(root.with_name("store-unmounted"))


def _critical_alert(st: Station) -> None:
    st.ctx.alerts.raise_alert(
        "fixity.modified", "2026/03/15/x.MP4", "a stored file changed", severity="critical"
    )


def _stale_fixity(st: Station) -> None:
    """The default schedule runs fixity daily: two days allowed. The last ended three ago."""
    st.checked(days_ago=3)


def _daemon_stopped(st: Station) -> None:
    st.daemon.release()


@pytest.mark.parametrize(
    ("fault", "check", "says"),
    [
        (_store_gone, "store", "is not there: is its disk mounted?"),
        (_critical_alert, "alerts", "1 critical alert(s) open"),
        (_stale_fixity, "fixity", "the last fixity run ended 3.0 days ago"),
        (_daemon_stopped, "daemon", "the daemon is not running"),
    ],
    ids=["store-missing", "critical-alert", "stale-fixity", "daemon-stopped"],
)
def test_each_fault_makes_it_unhealthy_naming_the_check(
    station: Station,
    capsys: pytest.CaptureFixture[str],
    fault: Callable[[Station], None],
    check: str,
    says: str,
) -> None:
    if fault is not _stale_fixity:
        station.checked()
    fault(station)

    code, report = health(capsys, station.config)

    assert code == 1
    assert report["healthy"] is False
    assert report["checks"][check]["ok"] is False
    assert says in report["checks"][check]["reason"]
    # only that check (and, for a missing store, the free space it can no longer measure)
    assert set(failed(report)) <= {check, "free_space"}
    if check != "store":
        assert failed(report) == [check]


def test_free_space_below_the_floor_is_unhealthy(
    tmp_path: Path, station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    station.checked()
    text = station.config.read_text()
    station.config.write_text(text.replace("min_free_percent =", "min_free_percent = 100 #"))

    code, report = health(capsys, station.config)

    assert code == 1
    assert failed(report) == ["free_space"]
    assert "at least 100% must be free" in report["checks"]["free_space"]["reason"]


def test_a_station_never_checked_is_unhealthy_once_its_first_dock_is_old(
    station: Station, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = health(capsys, station.config)

    assert code == 1
    assert failed(report) == ["fixity"]
    assert (
        "no fixity run has succeeded since the first dock 4.0 days ago"
        in (report["checks"]["fixity"]["reason"])
    )


def test_no_ledger_is_unhealthy_and_none_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "store").mkdir()

    code, report = health(capsys, config)

    assert code == 1
    assert report["checks"]["ledger"]["ok"] is False
    assert "no ledger at" in report["checks"]["ledger"]["reason"]
    assert {"ledger", "fixity", "alerts"} <= set(failed(report))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("ledger")]


def test_a_config_that_does_not_load_is_one_failed_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '\n[metrics]\nlisten = "nowhere"\n')

    code, report = health(capsys, config)

    assert code == 1
    assert report == {
        "healthy": False,
        "at": report["at"],
        "checks": {"config": {"ok": False, "reason": report["checks"]["config"]["reason"]}},
    }
    assert "metrics.listen" in report["checks"]["config"]["reason"]
