"""Alerts reach a person once, after the ledger has them, and are never lost.

The notify command here is a real script: it records what it was given and, to prove
it runs outside the ledger's write transaction, takes SQLite's write lock itself
(``BEGIN IMMEDIATE`` with a short busy timeout), failing if a dockd writer holds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from dockd.alerts import AlertSink
from dockd.alerts.rows import acknowledge, alert_dict, list_alerts
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.config.alerts import AlertsConfig
from dockd.ledger.db import Ledger, make_engine, open_ledger
from dockd.ledger.models import Alert
from tests.helpers.ledgers import BACKENDS
from tests.helpers.logs import assert_fields, log_events, named
from tests.helpers.skips import need
from tests.helpers.station import write_config

SHANGHAI = ZoneInfo("Asia/Shanghai")  # the test station's zone (tests/helpers/station.py)

NOTIFIER = """
import json, sqlite3, sys
record, ledger = sys.argv[1], sys.argv[2]
payload = json.load(sys.stdin)
lock = "not checked"
if ledger != "-":
    try:
        con = sqlite3.connect(ledger, timeout=0.2, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        con.close()
        lock = "free"
    except sqlite3.OperationalError as exc:
        lock = f"held: {exc}"
with open(record, "a", encoding="utf-8") as f:
    f.write(json.dumps({"payload": payload, "ledger_lock": lock}) + "\\n")
sys.exit(3 if lock.startswith("held") else 0)
"""


class Notifier:
    """The notify command of these tests and what it has received."""

    def __init__(self, tmp_path: Path, ledger_file: Path | None) -> None:
        self.script = tmp_path / "notify.py"
        self.script.write_text(NOTIFIER, encoding="utf-8")
        self.record = tmp_path / "notified.jsonl"
        self.command = (
            sys.executable,
            str(self.script),
            str(self.record),
            str(ledger_file) if ledger_file else "-",
        )

    def received(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        lines = self.record.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    def payloads(self) -> list[dict[str, Any]]:
        return [r["payload"] for r in self.received()]


def ledger_file(config: Config) -> Path | None:
    url = config.ledger.url
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


@pytest.fixture
def notifier(tmp_path: Path, config: Config) -> Notifier:
    return Notifier(tmp_path, ledger_file(config))


@pytest.fixture
def sink(ledger: Ledger, clock: FixedClock, config: Config, notifier: Notifier) -> AlertSink:
    return AlertSink(
        ledger, config.station.id, clock, AlertsConfig(notify_command=notifier.command)
    )


def open_alerts(ledger: Ledger) -> list[Alert]:
    with ledger.read() as s:
        return list_alerts(s)


# ------------------------------------------------------------- after the commit


def test_notify_runs_after_its_own_commit_with_the_ledger_unlocked(
    sink: AlertSink, ledger: Ledger, notifier: Notifier
) -> None:
    alert_id = sink.raise_alert(
        "ingest.file_failed", "DV-1:a.mp4", "a.mp4 was NOT stored", severity="critical"
    )
    [got] = notifier.received()
    assert got["ledger_lock"] == "free"
    assert got["payload"]["id"] == alert_id and alert_id is not None
    assert got["payload"]["message"] == "a.mp4 was NOT stored"
    assert got["payload"]["occurrences"] == 1
    assert [a.id for a in open_alerts(ledger)] == [alert_id]


def test_with_a_session_notify_waits_for_that_session_to_commit(
    sink: AlertSink, ledger: Ledger, notifier: Notifier
) -> None:
    with ledger.session() as s:
        alert_id = sink.raise_alert(
            "ingest.interrupted", "DV-1", "dock session 3 was cut short", session=s
        )
        s.flush()
        assert notifier.received() == []  # still inside the write transaction
    [got] = notifier.received()
    assert got["ledger_lock"] == "free"
    assert got["payload"]["id"] == alert_id
    assert [a.id for a in open_alerts(ledger)] == [alert_id]


def test_a_rolled_back_transaction_sends_nothing(
    sink: AlertSink, ledger: Ledger, notifier: Notifier
) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), ledger.session() as s:
        sink.raise_alert("device.unknown", "serial:X", "unknown recorder", session=s)
        raise Boom
    assert notifier.received() == []
    assert open_alerts(ledger) == []

    # A session reused after a rollback does not announce the rolled-back alert
    # when its next transaction commits.
    with Session(ledger.engine, expire_on_commit=False) as s:
        s.begin()
        sink.raise_alert("device.unknown", "serial:Y", "rolled back", session=s)
        s.rollback()
        s.begin()
        kept = sink.raise_alert("device.unknown", "serial:Z", "kept", session=s)
        s.commit()
    assert [p["subject"] for p in notifier.payloads()] == ["serial:Z"]
    assert [a.id for a in open_alerts(ledger)] == [kept]


def test_a_savepoint_counts_only_when_the_outer_transaction_commits(
    sink: AlertSink, ledger: Ledger, notifier: Notifier
) -> None:
    with ledger.session() as s:
        with pytest.raises(ZeroDivisionError), s.begin_nested():
            sink.raise_alert("wipe.failed", "DV-1", "gone with its savepoint", session=s)
            _ = 1 / 0
        with s.begin_nested():
            sink.raise_alert("wipe.failed", "DV-2", "savepoint released", session=s)
        assert notifier.received() == []  # released, but the outer one is still open
    assert [p["subject"] for p in notifier.payloads()] == ["DV-2"]
    assert [a.subject for a in open_alerts(ledger)] == ["DV-2"]


# ---------------------------------------------------------------------- folding


def test_repeats_in_one_group_are_one_alert_that_says_how_many_and_which(
    sink: AlertSink, ledger: Ledger, notifier: Notifier, clock: FixedClock
) -> None:
    first_at = clock.now()
    names = [f"DCIM/100MEDIA/BAD_{i:04}.MP4" for i in range(37)]
    ids = []
    for name in names:
        ids.append(
            sink.raise_alert(
                "ingest.probe_failed",
                f"DV-0001:{name}",
                f"{name} from DV-0001 cannot be played; it is kept as evidence and flagged",
                severity="warning",
                details={"session_id": 12},
                group="session:12",
                item=name,
            )
        )
        clock.advance(timedelta(seconds=1))
    last_at = clock.now() - timedelta(seconds=1)

    assert len(set(ids)) == 1 and ids[0] is not None
    [alert] = open_alerts(ledger)
    d = alert_dict(alert)
    assert d["id"] == ids[0]
    assert d["occurrences"] == 37
    assert d["at"] == first_at.isoformat() and d["last_at"] == last_at.isoformat()
    assert d["details"]["count"] == 37
    assert d["details"]["first"] == names[:10]
    assert d["details"]["session_id"] == 12
    msg = d["message"]
    assert msg.startswith(f"{names[0]} from DV-0001 cannot be played")
    assert "this happened 37 times in dock session 12" in msg
    assert f"the first 10: {', '.join(names[:10])}, and 27 more" in msg
    assert names[10] not in msg
    # one notification, for the first occurrence only
    assert [p["id"] for p in notifier.payloads()] == [ids[0]]

    # another kind, another group, or no group: separate alerts
    other_kind = sink.raise_alert("ingest.file_failed", "x", "m", group="session:12", item="a")
    other_group = sink.raise_alert("ingest.probe_failed", "x", "m", group="session:13", item="b")
    ungrouped = [sink.raise_alert("ingest.probe_failed", "x", "m") for _ in range(2)]
    assert len({ids[0], other_kind, other_group, *ungrouped}) == 5
    assert len(notifier.payloads()) == 5

    # once acknowledged, the next occurrence opens a new alert (and notifies again)
    with ledger.session() as s:
        acknowledge(s, ids[0], by="sgt", clock=clock, station=sink.station)
    again = sink.raise_alert(
        "ingest.probe_failed", "DV-0001:late.mp4", "late.mp4 ...", group="session:12", item="l"
    )
    assert again not in ids
    assert notifier.payloads()[-1]["id"] == again


def test_a_worse_repeat_raises_the_severity_and_short_groups_list_every_name(
    sink: AlertSink, ledger: Ledger
) -> None:
    for name, severity in (("a.mp4", "info"), ("b.mp4", "critical"), ("c.mp4", "warning")):
        sink.raise_alert("k", "s", "x", severity=severity, group="run:4", item=name)
    [alert] = open_alerts(ledger)
    assert alert.severity == "critical"
    assert alert.message == (
        "x [this happened 3 times in group 'run:4', all counted in this one alert: "
        "a.mp4, b.mp4, c.mp4]"
    )


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_concurrent_writers_fold_into_one_row_and_notify_once(
    config: Config, ledger: Ledger, clock: FixedClock, tmp_path: Path
) -> None:
    notifier = Notifier(tmp_path, None)  # other writers may hold the lock: not checked here
    sink = AlertSink(
        ledger, config.station.id, clock, AlertsConfig(notify_command=notifier.command)
    )
    threads_n, each = 4, 5
    start = threading.Barrier(threads_n)
    ids: list[int | None] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(each):
                if i % 2:
                    with ledger.session() as s:  # inside a caller's transaction too
                        got = sink.raise_alert(
                            "ingest.probe_failed", "x", "m", group="session:1",
                            item=f"{t}-{i}", session=s,
                        )  # fmt: skip
                else:
                    got = sink.raise_alert(
                        "ingest.probe_failed", "x", "m", group="session:1", item=f"{t}-{i}"
                    )
                with lock:
                    ids.append(got)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(threads_n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    with ledger.read() as s:
        rows = list(s.scalars(select(Alert)))
    assert len(rows) == 1
    assert rows[0].occurrences == threads_n * each
    assert set(ids) == {rows[0].id}
    assert len(notifier.payloads()) == 1


# -------------------------------------------------------------------------- the log


def test_a_raised_alert_is_logged_with_its_kind_severity_and_fields(
    sink: AlertSink, notifier: Notifier
) -> None:
    """The journal is where an operator without the ledger sees an alert: the first
    occurrence is logged with what the alert says, a repeat with how many there are."""
    with log_events() as logs:
        first = sink.raise_alert(
            "ingest.file_failed",
            "DV-1:a.mp4",
            "a.mp4 was NOT stored",
            severity="critical",
            group="session:7",
            item="a.mp4",
        )
        again = sink.raise_alert(
            "ingest.file_failed",
            "DV-1:b.mp4",
            "b.mp4 was NOT stored",
            group="session:7",
            item="b.mp4",
        )
    assert first is not None and again == first
    [raised] = named(logs, "alert")
    assert_fields(
        raised,
        log_level="warning",
        alert_id=first,
        kind="ingest.file_failed",
        severity="critical",
        subject="DV-1:a.mp4",
        message="a.mp4 was NOT stored",
        group="session:7",
    )
    [repeated] = named(logs, "alert repeated")
    assert_fields(
        repeated,
        log_level="info",
        alert_id=first,
        kind="ingest.file_failed",
        group="session:7",
        occurrences=2,
        item="b.mp4",
    )
    assert len(notifier.payloads()) == 1


def test_an_alert_in_a_transaction_is_logged_at_its_commit_and_a_rolled_back_one_in_full(
    sink: AlertSink, ledger: Ledger, notifier: Notifier
) -> None:
    with log_events() as logs:
        with ledger.session() as s:
            kept = sink.raise_alert("ingest.interrupted", "DV-1", "session 3 cut short", session=s)
            assert named(logs, "alert") == []  # not before the row is committed
        with pytest.raises(ZeroDivisionError), ledger.session() as s:
            sink.raise_alert(
                "device.unknown", "serial:X", "unknown recorder", severity="critical", session=s
            )
            _ = 1 / 0
    [raised] = named(logs, "alert")
    assert_fields(
        raised,
        alert_id=kept,
        kind="ingest.interrupted",
        severity="warning",
        subject="DV-1",
        message="session 3 cut short",
        group=None,
    )
    [lost] = named(logs, "alert not written: its transaction rolled back")
    assert_fields(
        lost,
        log_level="error",
        station="st-test",
        kind="device.unknown",
        severity="critical",
        subject="serial:X",
        message="unknown recorder",
    )
    assert [p["subject"] for p in notifier.payloads()] == ["DV-1"]


# ------------------------------------------------------------- ledger unwritable


def critical_events(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["log_level"] == "critical"]


def assert_logged_in_full(event: MutableMapping[str, Any], error: str) -> None:
    assert event["event"] == "alert not written to the ledger"
    assert event["kind"] == "ingest.file_failed"
    assert event["severity"] == "critical"
    assert event["subject"] == "DV-1:a.mp4"
    assert event["message"].startswith("a.mp4 was NOT stored")
    assert event["details"] == {"session_id": 7}
    assert error in event["error"]


def raise_file_failed(sink: AlertSink, message: str = "a.mp4 was NOT stored") -> int | None:
    return sink.raise_alert(
        "ingest.file_failed",
        "DV-1:a.mp4",
        message,
        severity="critical",
        details={"session_id": 7},
    )


@pytest.fixture
def read_only_ledger(config: Config, ledger: Ledger) -> Iterator[Ledger]:
    """The same SQLite ledger, opened read-only by SQLite itself (``mode=ro``)."""
    path = ledger_file(config)
    assert path is not None
    ro = Ledger(create_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
    yield ro
    ro.close()


def test_an_unwritable_ledger_loses_no_alert(
    read_only_ledger: Ledger, ledger: Ledger, clock: FixedClock, notifier: Notifier
) -> None:
    sink = AlertSink(
        read_only_ledger, "st-test", clock, AlertsConfig(notify_command=notifier.command)
    )
    with capture_logs() as logs:
        assert raise_file_failed(sink) is None
    [event] = critical_events(logs)
    assert_logged_in_full(event, "readonly database")
    [payload] = notifier.payloads()
    assert payload["id"] is None and payload["message"] == "a.mp4 was NOT stored"
    assert payload["severity"] == "critical" and payload["details"] == {"session_id": 7}
    assert "not written to the ledger" in payload["ledger_error"]
    assert open_alerts(ledger) == []

    # repeats of one group: each logged in full, the notify command runs once
    with capture_logs() as logs:
        for name in ("b.mp4", "c.mp4"):
            sink.raise_alert("ingest.probe_failed", name, "m", group="session:7", item=name)
    assert [e["item"] for e in critical_events(logs)] == ["b.mp4", "c.mp4"]
    assert [p["subject"] for p in notifier.payloads()[1:]] == ["b.mp4"]

    # inside a caller's transaction the caller owns the failure: it raises
    with pytest.raises(SQLAlchemyError), read_only_ledger.session() as s:
        sink.raise_alert("k", "s", "m", session=s)
    assert len(notifier.payloads()) == 2


def test_an_unreachable_ledger_loses_no_alert(clock: FixedClock, notifier: Notifier) -> None:
    pytest.importorskip("psycopg")
    # port 1 on the loopback: nothing listens there, the connection is refused
    gone = Ledger(make_engine("postgresql+psycopg://dockd@127.0.0.1:1/ledger"))
    sink = AlertSink(gone, "st-test", clock, AlertsConfig(notify_command=notifier.command))
    try:
        with capture_logs() as logs:
            assert raise_file_failed(sink) is None
    finally:
        gone.close()
    [event] = critical_events(logs)
    assert_logged_in_full(event, "127.0.0.1")
    assert [p["subject"] for p in notifier.payloads()] == ["DV-1:a.mp4"]


def test_a_full_disk_under_the_ledger_loses_no_alert(tmp_path: Path, clock: FixedClock) -> None:
    need(root=True, tools=("mount", "umount"), why="a real full tmpfs under the ledger")
    mnt = tmp_path / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        led = open_ledger(f"sqlite:///{mnt / 'ledger.sqlite3'}")
        try:
            notifier = Notifier(tmp_path, None)
            sink = AlertSink(led, "st-test", clock, AlertsConfig(notify_command=notifier.command))
            # fill the disk to the last block; unbuffered, so that what the last write
            # could not put on the disk is not left in a buffer for close() to fail on
            with open(mnt / "filler", "wb", buffering=0) as f:
                try:
                    while f.write(b"\0" * 65536):
                        os.fsync(f.fileno())
                except OSError:
                    pass
            # bigger than anything the ledger's write-ahead log could reuse
            message = "a.mp4 was NOT stored; " + "x" * (2 * 1024 * 1024)
            with capture_logs() as logs:
                assert raise_file_failed(sink, message) is None
            [event] = critical_events(logs)
            assert_logged_in_full(event, "full")
            assert [p["message"] for p in notifier.payloads()] == [message]
        finally:
            led.close()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# -------------------------------------------------------------------------- CLI


def test_alerts_list_shows_occurrences_and_last_time(
    tmp_path: Path,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    conf = write_config(tmp_path)
    monkeypatch.setenv("DOCKD_CONFIG", str(conf))
    monkeypatch.setenv("COLUMNS", "400")
    led = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    try:
        sink = AlertSink(led, "st-test", clock, AlertsConfig())
        for i in range(3):
            sink.raise_alert("ingest.probe_failed", "x", "m", group="session:5", item=f"{i}")
            clock.advance(timedelta(minutes=1))
    finally:
        led.close()
    capsys.readouterr()  # what raising them logged
    assert main(["alerts", "list", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["occurrences"] == 3
    last_at = clock.now() - timedelta(minutes=1)
    # JSON: ISO 8601 with the station's offset (Asia/Shanghai), the same instant
    assert row["last_at"] == last_at.astimezone(SHANGHAI).isoformat()
    assert datetime.fromisoformat(row["last_at"]) == last_at
    assert main(["alerts", "list"]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "occurrences" in line)
    assert "last_at" in header
    # the table: station time as a person reads it, no offset
    assert "2026-03-16 10:02" in table and "+00:00" not in table
