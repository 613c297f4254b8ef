"""The SQL views show station time beside UTC (migration 0009): a file recorded at
06:30 on the station's clock reads 06:30 in ``recorded_start_local``, on SQLite and on
PostgreSQL, in a zone with daylight saving time too."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config, parse_config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.zone import record_station_zone
from fixtures.make_recorder import make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import config_text

DOCKED = datetime(2026, 7, 16, 2, 0, tzinfo=UTC)  # after both days' footage
WINTER = datetime(2026, 3, 15, 6, 30)  # station time (Berlin: CET, +01:00)
SUMMER = datetime(2026, 7, 15, 6, 30)  # station time (Berlin: CEST, +02:00)


def _in_zone(tmp_path: Path, config: Config, zone: str) -> Config:
    """The test station (its ledger on SQLite or PostgreSQL) with its clock in ``zone``."""
    toml = config_text(tmp_path, ledger_url=config.ledger.url).replace("Asia/Shanghai", zone)
    return parse_config(toml, source=str(tmp_path / "dockd.toml"), base=tmp_path)


def _ingest_two_days(tmp_path: Path, config: Config) -> Ledger:
    """A recorder's 06:30 clips of a winter and a summer day, docked once, and the
    station's zone written the way every dockd command writes it."""
    ledger = open_ledger(config.ledger.url)
    clock = FixedClock(DOCKED)
    assert record_station_zone(ledger, config.station.id, config.station.timezone, DOCKED)
    assert not record_station_zone(ledger, config.station.id, config.station.timezone, DOCKED)
    docked = tmp_path / "docked"
    for day, start in (("winter", WINTER), ("summer", SUMMER)):
        at = start.replace(tzinfo=config.station.tz)
        rec = make_recorder(tmp_path / day, start=at, clips=1, extras=False)
        shutil.copytree(rec.root, docked, dirs_exist_ok=True)
    register(ledger, clock, rec)
    ctx = Context(config, ledger, clock, AlertSink(ledger, "st-test", clock, config.alerts))
    assert run_ingest(ctx, docked).ok
    return ledger


QUERY = (
    "SELECT recorded_start, recorded_start_local, recorded_end_local, ingested_at_local"
    " FROM v_files WHERE source_path LIKE '%.MP4' ORDER BY recorded_start"
)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_views_show_station_time(tmp_path: Path, config: Config, zone: str) -> None:
    config = _in_zone(tmp_path, config, zone)
    postgres = config.ledger.url.startswith("postgresql")
    ledger = _ingest_two_days(tmp_path, config)
    try:
        with ledger.read() as s:
            rows = s.execute(text(QUERY)).all()
            (written,) = s.execute(text("SELECT zone FROM v_station_zones")).one()
    finally:
        ledger.close()
    assert written == zone
    local = [r.recorded_start_local for r in rows]
    if postgres:  # a timestamp without a zone
        local = [t.strftime("%Y-%m-%d %H:%M:%S") for t in local]
    assert local == ["2026-03-15 06:30:00", "2026-07-15 06:30:00"]
    assert all(r.recorded_end_local is not None for r in rows)
    docked_local = str(rows[0].ingested_at_local)
    expected = DOCKED.astimezone(config.station.tz).strftime("%Y-%m-%d %H:%M")
    assert docked_local.startswith(expected)


def test_an_auditor_with_plain_sqlite3_reads_station_time(tmp_path: Path, config: Config) -> None:
    """No dockd, no time zone database: a read-only sqlite3 connection gets the same
    local times, and docs/auditors.md's "officer in March" query on the local column."""
    config = _in_zone(tmp_path, config, "Europe/Berlin")
    _ingest_two_days(tmp_path, config).close()
    path = config.ledger.url.removeprefix("sqlite:///")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        march = conn.execute(
            "SELECT recorded_start_local FROM v_files WHERE officer_badge = '012345'"
            " AND recorded_start_local >= '2026-03-01' AND recorded_start_local < '2026-04-01'"
            " AND source_path LIKE '%.MP4'"
        ).fetchall()
    finally:
        conn.close()
    assert march == [("2026-03-15 06:30:00",)]
