"""The ledger schema: migrations build exactly the models; an old schema is refused."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, insert, select, text

from dockd.alerts import AlertSink
from dockd.alerts.rows import acknowledge, list_alerts
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.config.alerts import AlertsConfig
from dockd.errors import LedgerError, UsageError
from dockd.ingest import take
from dockd.ledger import db, registry
from dockd.ledger.models import (
    INDEX_OPTIONS,
    ONE_DIALECT_INDEXES,
    AuditEvent,
    Base,
    Device,
    Recording,
)
from tests.helpers.ledgers import BACKENDS
from tests.helpers.station import NOW


def _schema_diff(conn: Connection) -> list[Any]:
    """What the migrated ledger lacks or has beyond the models, on this database (the
    indexes built on the other kind only are not looked for)."""
    dialect = conn.dialect.name

    def here(_obj: object, name: str | None, type_: str, *_rest: object) -> bool:
        return type_ != "index" or ONE_DIALECT_INDEXES.get(name or "", dialect) == dialect

    opts = {"compare_type": True, "include_object": here}
    return list(compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata))


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_migrations_build_exactly_the_models(config: Config) -> None:
    led = db.open_ledger(config.ledger.url)
    try:
        with led.engine.connect() as conn:
            diff = _schema_diff(conn)
        assert diff == []
        assert db.current_revision(led.engine) == db.head_revision()
        if led.dialect == "sqlite":
            with led.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_indexes_are_built_with_their_options(config: Config) -> None:
    """The partial, INCLUDE and hash indexes the reports and the ingest rely on are
    built as ``INDEX_OPTIONS`` says, which the schema comparison above does not look
    at: the report index holds the id on PostgreSQL (the late and gaps reports fetch
    the few files they list by it), the flag indexes hold only flagged files."""
    led = db.open_ledger(config.ledger.url)
    try:
        with led.engine.connect() as conn:
            if led.dialect == "sqlite":
                ddl = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
            else:
                ddl = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            built = {name: sql for name, sql in conn.exec_driver_sql(ddl) if sql}
        expected = {
            name: options[led.dialect]
            for name, options in INDEX_OPTIONS.items()
            if led.dialect in options
        }
        assert expected, led.dialect
        for name, option in expected.items():
            assert option in built[name], (name, built[name])
        assert "recorded_start, recorded_end, ingested_at," in built["ix_files_report"]
        for name in set(built) - set(expected):  # and no other index has an option
            assert not any(o in built[name] for o in (" WHERE ", "INCLUDE", "USING hash")), (
                name,
                built[name],
            )
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_read_sees_one_snapshot_whatever_is_committed_meanwhile(config: Config) -> None:
    """A report asks several statements in one read (the usage reports one per day):
    a file committed between two of them is in none of them, on both ledgers."""
    led = db.open_ledger(config.ledger.url)
    when = datetime(2026, 3, 15, tzinfo=UTC)

    def add(n: int) -> None:
        with led.session() as s:
            s.add(
                Recording(
                    station="ST-1",
                    device_ref="DV-0001",
                    kind="video",
                    recorded_start=when,
                    time_source="filename",
                    size_bytes=n,
                    blake3=f"{n:064x}",
                    source_path=f"DCIM/{n}.MP4",
                    source_path_raw=f"DCIM/{n}.MP4".encode(),
                    store_path=f"2026/03/15/{n}.MP4",
                    ingested_at=when,
                )
            )

    count = select(func.count()).select_from(Recording)
    try:
        add(1)
        with led.read() as s:
            before = s.scalar(count)
            add(2)  # committed by another unit of work while the read is open
            during = s.scalar(count)
        with led.read() as s:
            after = s.scalar(count)
        assert (before, during, after) == (1, 1, 2)
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_already_here_by_name_is_an_index_search(config: Config) -> None:
    """Every dock asks whether its recorder already gave files of those paths and sizes
    (``take.known_by_name``). Read by scanning the files table, that cost seconds per
    file on a ledger of ten million files (revision 0018)."""
    led = db.open_ledger(config.ledger.url)
    try:
        with led.engine.begin() as conn:  # a recorder's many files beside a few of others'
            when = datetime(2026, 3, 15, tzinfo=UTC)
            conn.execute(
                insert(Recording),
                [
                    {
                        "station": "ST-1",
                        "device_ref": "DV-0001" if n % 50 else f"DV-{n:04d}",
                        "kind": "video",
                        "recorded_start": when,
                        "time_source": "filename",
                        "size_bytes": n,
                        "blake3": f"{n:064x}",
                        "source_path": f"DCIM/{n}.MP4",
                        "source_path_raw": f"DCIM/{n}.MP4".encode(),
                        "store_path": f"2026/03/15/{n}.MP4",
                        "ingested_at": when,
                    }
                    for n in range(2000)
                ],
            )
            conn.exec_driver_sql("ANALYZE")
        with led.engine.connect() as conn:
            stmt = take._BY_NAMES.params(device="DV-0001", raws=[b"DCIM/a.MP4", b"DCIM/b.MP4"])
            sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            if led.dialect == "sqlite":
                plan = [r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            else:
                plan = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}")]
        index = "ix_files_device_source" if led.dialect == "sqlite" else "ix_files_source_path"
        assert any(index in step for step in plan), plan
        assert not any(step.startswith("SCAN files") for step in plan), plan
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_out_of_date_schema_is_refused_until_migrated(
    config: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = config.ledger.url
    engine = db.make_engine(url)
    cfg = db._alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    with pytest.raises(LedgerError, match=r"schema version 0001 .* run `dockd ledger migrate`"):
        db.open_ledger(url)

    conf = tmp_path / "dockd.toml"
    conf.write_text(f'[ledger]\nurl = "{url}"\n[store]\nroot = "{tmp_path}/store"\n')
    monkeypatch.setenv("DOCKD_CONFIG", str(conf))
    assert main(["devices", "list"]) == LedgerError.exit_code
    assert "dockd ledger migrate" in capsys.readouterr().err
    assert main(["ledger", "migrate"]) == 0
    assert f"to {db.head_revision()}" in capsys.readouterr().out
    db.open_ledger(url).close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_newest_migrations_go_down_and_up_again(config: Config) -> None:
    """An upgrade that must be undone (back to the auditor views of 0003) can be, on
    both ledgers: the SQLite downgrade drops columns in place instead of copying the
    tables, which the views naming them would not survive."""
    db.open_ledger(config.ledger.url).close()
    engine = db.make_engine(config.ledger.url)
    cfg = db._alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert db.current_revision(engine) == "0003"
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            diff = _schema_diff(conn)
            assert conn.exec_driver_sql("SELECT count(*) FROM v_files").scalar() == 0
        assert diff == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_times_come_back_aware_and_naive_times_are_refused(config: Config) -> None:
    led = db.open_ledger(config.ledger.url)
    try:
        with led.session() as s:
            dev = registry.add_device(s, number="DV-1", at=NOW, station="s", actor="a")
        with led.read() as s:
            got = s.scalar(text("SELECT registered_at FROM devices"))
            assert got is not None
            again = registry.device_by_number(s, "DV-1")
        assert again.registered_at == NOW and again.registered_at.tzinfo is not None
        assert dev.number == "DV-1"
        with pytest.raises(Exception, match="naive datetime"), led.session() as s:
            registry.add_officer(
                s, badge="1", name="x", at=datetime(2026, 1, 1), station="s", actor="a"
            )
    finally:
        led.close()


# times a ledger keeps: fractions or none, far back and far ahead, given in other zones
_TIMES = (
    NOW,
    NOW.replace(microsecond=0),
    NOW.replace(microsecond=999_999),
    datetime(1980, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")),
    datetime(2026, 9, 1, 0, 0, 0, 1, tzinfo=ZoneInfo("Asia/Shanghai")),
)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_times_come_back_to_the_microsecond_in_utc(config: Config) -> None:
    """Read through an entity, a plain row or an aggregate, a time is the instant
    written, in UTC (SQLite's text is read by a parse of its own: this holds it)."""
    led = db.open_ledger(config.ledger.url)
    try:
        with led.session() as s:
            for i, at in enumerate(_TIMES):
                registry.add_device(s, number=f"DV-{i}", at=at, station="s", actor="a")
        with led.read() as s:
            by_entity = [d.registered_at for d in s.scalars(select(Device).order_by(Device.id))]
            by_row = list(s.scalars(select(Device.registered_at).order_by(Device.id)))
            latest = s.scalar(select(func.max(Device.registered_at)))
        # (a time in an hour a clock change repeats equals no time of another zone:
        # compared in UTC)
        written = [t.astimezone(UTC) for t in _TIMES]
        for got in (by_entity, by_row):
            assert got == written
            assert all(t.tzinfo is UTC for t in got)
            assert [t.isoformat() for t in got] == [t.isoformat() for t in written]
        assert latest == max(written) and latest is not None and latest.tzinfo is UTC
    finally:
        led.close()


def test_a_time_written_into_the_sqlite_ledger_by_hand_is_read_as_it_says(tmp_path: Path) -> None:
    """Text dockd does not write (an offset of its own, a date alone, a "T") is read as
    SQLAlchemy reads it; text that is no time is an error, not a None."""
    led = db.open_ledger(f"sqlite:///{tmp_path / 'l.sqlite3'}")
    try:
        with led.session() as s:
            registry.add_device(s, number="DV-1", at=NOW, station="s", actor="a")
        written = {
            "2026-09-01T08:00:00+08:00": datetime(2026, 9, 1, tzinfo=UTC),
            "2026-09-01 08:00:00.5-02:00": datetime(2026, 9, 1, 10, 0, 0, 500_000, tzinfo=UTC),
            "2026-09-01": datetime(2026, 9, 1, tzinfo=UTC),
            "2026-09-01T07:06:05": datetime(2026, 9, 1, 7, 6, 5, tzinfo=UTC),
        }
        for raw, meant in written.items():
            with led.engine.begin() as conn:
                conn.execute(text("UPDATE devices SET registered_at = :t"), {"t": raw})
            with led.read() as s:
                got = s.scalar(select(Device.registered_at))
            assert got == meant and got is not None and got.tzinfo is UTC, raw
        with led.engine.begin() as conn:
            conn.execute(text("UPDATE devices SET registered_at = 'last tuesday'"))
        with pytest.raises(ValueError, match="last tuesday"), led.read() as s:
            s.scalar(select(Device.registered_at))
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_assignments_may_not_overlap(config: Config) -> None:
    led = db.open_ledger(config.ledger.url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        with led.session() as s:
            registry.add_device(s, number="DV-1", at=NOW, station="s", actor="a")
            registry.add_officer(s, badge="100", name="A", at=NOW, station="s", actor="a")
            registry.add_officer(s, badge="200", name="B", at=NOW, station="s", actor="a")
            registry.assign(
                s,
                device_number="DV-1",
                badge="100",
                valid_from=t0,
                valid_until=t0 + timedelta(days=30),
                at=NOW,
                station="s",
                actor="a",
            )
        with pytest.raises(UsageError, match="already assigned to badge 100"), led.session() as s:
            registry.assign(
                s,
                device_number="DV-1",
                badge="200",
                valid_from=t0 + timedelta(days=10),
                valid_until=None,
                at=NOW,
                station="s",
                actor="a",
            )
        with led.session() as s:
            registry.assign(
                s,
                device_number="DV-1",
                badge="200",
                valid_from=t0 + timedelta(days=30),
                valid_until=None,
                at=NOW,
                station="s",
                actor="a",
            )
        with led.read() as s:
            dev = registry.device_by_number(s, "DV-1")
            first = registry.officer_at(s, dev.id, t0 + timedelta(days=29))
            second = registry.officer_at(s, dev.id, t0 + timedelta(days=31))
            before = registry.officer_at(s, dev.id, t0 - timedelta(seconds=1))
        assert (first and first.badge, second and second.badge, before) == ("100", "200", None)
    finally:
        led.close()


def test_alert_reaches_the_notify_command_as_json_and_can_be_acknowledged(
    tmp_path: Path,
) -> None:
    out = tmp_path / "notified.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    led = db.open_ledger(f"sqlite:///{tmp_path}/l.sqlite3")
    clock = FixedClock(NOW)
    sink = AlertSink(
        led, "st-1", clock, AlertsConfig(notify_command=(sys.executable, "-c", script))
    )
    try:
        alert_id = sink.raise_alert(
            "ingest.file_failed",
            "DV-1:a.mp4",
            "a.mp4 was NOT stored",
            severity="critical",
            details={"session_id": 7},
        )
        assert alert_id is not None
        import json

        payload = json.loads(out.read_text())
        assert payload["id"] == alert_id and payload["severity"] == "critical"
        assert payload["details"] == {"session_id": 7}
        assert payload["message"] == "a.mp4 was NOT stored"
        with led.session() as s:
            acknowledge(s, alert_id, by="duty-sgt", clock=clock, station="st-1")
        with led.read() as s:
            assert list_alerts(s) == []
            ev = s.query(AuditEvent).filter_by(action="alert.ack").one()
            assert ev.actor == "duty-sgt"
        with (
            pytest.raises(UsageError, match="already acknowledged by duty-sgt"),
            led.session() as s,
        ):
            acknowledge(s, alert_id, by="x", clock=clock, station="st-1")
    finally:
        led.close()


def test_failing_notify_command_keeps_the_alert(tmp_path: Path) -> None:
    led = db.open_ledger(f"sqlite:///{tmp_path}/l.sqlite3")
    sink = AlertSink(
        led,
        "st-1",
        FixedClock(NOW),
        AlertsConfig(notify_command=(str(tmp_path / "no-such-notifier"),)),
    )
    try:
        sink.raise_alert("device.unknown", "serial:X", "unknown recorder")
        with led.read() as s:
            assert [a.subject for a in list_alerts(s)] == ["serial:X"]
    finally:
        led.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_optimize_vacuums_postgresql_and_analyzes_sqlite(
    config: Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`dockd ledger optimize` leaves the files table vacuumed on PostgreSQL (the
    visibility map that index-only scans need) and its statistics fresh on SQLite."""
    url = config.ledger.url
    led = db.open_ledger(url)
    with led.session() as s:
        registry.add_device(s, number="DV-1", at=NOW, station="s", actor="a")
    led.close()
    conf = tmp_path / "dockd.toml"
    conf.write_text(f'[ledger]\nurl = "{url}"\n[store]\nroot = "{tmp_path}/store"\n')
    monkeypatch.setenv("DOCKD_CONFIG", str(conf))

    assert main(["ledger", "optimize"]) == 0
    out = capsys.readouterr().out

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                assert "vacuumed" in out
                vacuums = conn.execute(
                    text(
                        "SELECT vacuum_count, last_vacuum FROM pg_stat_user_tables"
                        " WHERE relname = 'files'"
                    )
                ).one()
                assert vacuums.vacuum_count >= 1
                assert vacuums.last_vacuum is not None
            else:
                assert "statistics refreshed" in out
                analyzed = conn.execute(text("SELECT DISTINCT tbl FROM sqlite_stat1")).scalars()
                assert "devices" in set(analyzed)
    finally:
        engine.dispose()
