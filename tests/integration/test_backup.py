"""``dockd ledger backup`` and ``restore``, and the ``[backup]`` job of ``dockd run``: a
ledger of more than 10,000 rows copied while a writer holds it, verified, restored over
another station; refusals to overwrite, to restore a tampered copy, or under a daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import parse_config
from dockd.context import Context
from dockd.daemon.scheduler import SweepScheduler
from dockd.errors import ConfigError
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.backup import backup, backup_name
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, Recording
from dockd.runtime import LOCK_NAME, FileLock, runtime_dir
from fixtures.make_recorder import make_recorder
from tests.helpers.ledgers import register
from tests.helpers.pgserver import PgServer
from tests.helpers.station import NOW, config_text, make_config, write_config

BULK = 5_000  # files besides the real ingest, each with its file.ingest event
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A station's SQLite ledger of more than 10,000 rows: a real ingest of a recorder,
    then BULK more file rows, each written with its audit event as an ingest writes it
    (``audit.record_file_change``), so the chain and every row verify."""
    root = tmp_path_factory.mktemp("template")
    cfg = make_config(root)
    clock = FixedClock(NOW)
    card = make_recorder(root / "rec", clips=2, extras=False)
    led = open_ledger(cfg.ledger.url)
    register(led, clock, card)
    ctx = Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    assert run_ingest(ctx, card.root).ok
    columns = [a.key for a in inspect(Recording).column_attrs if a.key != "id"]
    with led.session() as s:
        model = s.scalars(select(Recording).order_by(Recording.id)).first()
        assert model is not None
        for i in range(BULK):
            row = Recording(**{c: getattr(model, c) for c in columns})
            row.store_path = f"2026/03/15/{model.device_ref}/bulk-{i:05d}.mp4"
            row.blake3 = f"{i:064x}"
            row.ingested_at = NOW + timedelta(seconds=i)
            s.add(row)
            s.flush()
            audit.record_file_change(
                s,
                row,
                at=row.ingested_at,
                actor="dockd",
                action="file.ingest",
                changed=audit.AUDITED_FILE_COLUMNS,
                details={"size": row.size_bytes, "session_id": row.session_id},
            )
    led.close()
    path = root / "ledger.sqlite3"
    wal = path.with_name("ledger.sqlite3-wal")  # checkpointed on close: kept empty for readers
    assert not wal.exists() or wal.stat().st_size == 0
    return path


def counts(ledger: Path) -> tuple[int, int, str]:
    """(files, audit events, last audit hash) of a ledger, read as an auditor would."""
    with sqlite3.connect(ledger) as db:
        files = db.execute("SELECT count(*) FROM files").fetchone()[0]
        events, head = db.execute(
            "SELECT count(*), (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1) "
            "FROM audit_events"
        ).fetchone()
    db.close()
    return files, events, head


def make_station(root: Path, template: Path | None, extra: str = "") -> Path:
    """A station's config file; its ledger a copy of ``template`` (or a new empty one)."""
    root.mkdir(parents=True, exist_ok=True)
    conf = write_config(root, extra)
    if template is not None:
        shutil.copy(template, root / "ledger.sqlite3")
    else:
        open_ledger(f"sqlite:///{root / 'ledger.sqlite3'}").close()
    return conf


@pytest.fixture
def station(tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The station of the big ledger, as DOCKD_CONFIG; returns its directory."""
    make_station(tmp_path / "a", template)
    monkeypatch.setenv("DOCKD_CONFIG", str(tmp_path / "a" / "dockd.toml"))
    return tmp_path / "a"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_backup_while_a_writer_holds_the_ledger_copies_what_was_committed(
    station: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = station / "ledger.sqlite3"
    files, events, head = counts(ledger)
    assert files + events > 10_000
    writer = sqlite3.connect(ledger, isolation_level=None)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        writer.execute("BEGIN IMMEDIATE")  # dockd run in the middle of a write
        writer.execute("UPDATE files SET case_number = 'NOT-AUDITED' WHERE id = 1")
        dest = station / "backups"
        dest.mkdir()
        code, out, err = run(capsys, "ledger", "backup", str(dest), "--format", "json")
        assert code == 0, err
    finally:
        writer.rollback()
        writer.close()
    (result,) = json.loads(out)
    copy = Path(result["file"])
    assert copy.parent == dest
    assert re.fullmatch(r"ledger-st-test-\d{8}T\d{6}Z\.sqlite3", copy.name)
    assert result["size_bytes"] == copy.stat().st_size > 0
    # Exactly what was committed: the uncommitted change is not in it, so it verifies.
    assert (result["events_verified"], result["files_verified"]) == (events, files)
    assert result["last_audit_hash"] == head
    assert counts(copy) == (files, events, head)
    assert stat.S_IMODE(copy.stat().st_mode) in (0o600, 0o640)
    assert sorted(p.name for p in dest.iterdir()) == [copy.name]  # no temporary left
    assert not copy.with_name(copy.name + "-wal").exists()  # one self-contained file

    code, out, _ = run(capsys, "ledger", "backup", str(dest / "named.sqlite3"))
    assert code == 0
    assert f"ledger backed up to {dest / 'named.sqlite3'}" in out
    assert f"verified {events} event(s) and {files} file row(s)" in out
    assert f"last audit hash: {head}" in out


def test_backup_never_overwrites_a_file_unless_forced(
    station: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = station / "ledger-copy.sqlite3"
    dest.write_bytes(b"an older backup")
    code, _, err = run(capsys, "ledger", "backup", str(dest))
    assert code != 0
    assert f"{dest} already exists" in err and "--force" in err
    assert dest.read_bytes() == b"an older backup"
    assert run(capsys, "ledger", "backup", str(dest), "--force")[0] == 0
    assert counts(dest) == counts(station / "ledger.sqlite3")
    code, _, err = run(capsys, "ledger", "backup", str(station / "nowhere" / "x.sqlite3"))
    assert code == 66 and "create it first" in err


def test_restore_over_a_station_verifies_and_keeps_the_replaced_ledger(
    station: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    copy = tmp_path / "backup.sqlite3"
    assert run(capsys, "ledger", "backup", str(copy))[0] == 0
    files, events, head = counts(station / "ledger.sqlite3")

    other = make_station(tmp_path / "b", None)  # another station, its own (small) ledger
    monkeypatch.setenv("DOCKD_CONFIG", str(other))
    target = other.parent / "ledger.sqlite3"
    before = target.read_bytes()
    code, _, err = run(capsys, "ledger", "restore", str(copy))
    assert code != 0 and f"the ledger {target} exists; --force replaces it" in err
    assert target.read_bytes() == before

    code, out, err = run(capsys, "ledger", "restore", str(copy), "--force")
    assert code == 0, err
    (kept,) = other.parent.glob("ledger.sqlite3.before-restore-*")
    assert f"the replaced ledger is kept as {kept}" in out
    assert counts(target) == (files, events, head)
    assert counts(kept)[0] == 0  # the replaced ledger, whole
    code, out, err = run(capsys, "audit", "verify")
    assert code == 0, err
    assert f"checked {events} event(s) and {files} file row(s)" in out
    assert "audit trail OK" in out

    new = tmp_path / "c"  # a station set up again from scratch: no ledger yet
    new.mkdir()
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(new)))
    code, out, err = run(capsys, "ledger", "restore", str(copy), "--format", "json")
    assert code == 0, err
    assert json.loads(out)[0]["kept"] is None
    assert counts(new / "ledger.sqlite3") == (files, events, head)
    assert stat.S_IMODE((new / "ledger.sqlite3").stat().st_mode) == 0o640


def test_a_tampered_backup_is_refused_by_restore(
    station: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "backup.sqlite3"
    assert run(capsys, "ledger", "backup", str(copy))[0] == 0
    edited = 4_321  # an ingest of the bulk, its actor rewritten in the copy
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE id = ?", (edited,))
    db.close()
    ledger = station / "ledger.sqlite3"
    before = counts(ledger)
    code, _, err = run(capsys, "ledger", "restore", str(copy), "--force")
    assert code == 65
    assert f"the backup; not restored: {copy} does not verify" in err
    assert f"event #{edited}" in err and "does not match its own hash" in err
    assert counts(ledger) == before
    assert not list(station.glob("ledger.sqlite3.before-restore-*"))


def test_restore_refuses_while_the_daemon_or_a_writer_holds_the_ledger(
    station: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "backup.sqlite3"
    assert run(capsys, "ledger", "backup", str(copy))[0] == 0
    daemon = FileLock(runtime_dir() / LOCK_NAME)  # what `dockd run` holds while it runs
    assert daemon.try_acquire("dockd run")
    try:
        code, _, err = run(capsys, "ledger", "restore", str(copy), "--force")
    finally:
        daemon.release()
    assert code == 69 and f"PID {os.getpid()}" in err and "systemctl stop dockd" in err

    writer = sqlite3.connect(station / "ledger.sqlite3", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a `dockd ingest` by hand, mid-commit
        code, _, err = run(capsys, "ledger", "restore", str(copy), "--force")
    finally:
        writer.rollback()
        writer.close()
    assert code != 0 and "is being written by another process" in err
    assert not list(station.glob("ledger.sqlite3.before-restore-*"))


# ------------------------------------------------------------------------ [backup] job


def test_the_backup_section_parses_and_a_bad_schedule_names_its_key_and_line(
    tmp_path: Path,
) -> None:
    cfg = make_config(tmp_path, f'[backup]\nschedule = "15 4 * * *"\ndest = "{tmp_path}"\n')
    assert (cfg.backup.schedule, cfg.backup.dest, cfg.backup.keep) == ("15 4 * * *", tmp_path, 14)
    assert make_config(tmp_path).backup.schedule == ""  # off unless asked for
    extra = f'[backup]\ndest = "{tmp_path}"\nschedule = "61 4 * * *"\n'
    line = config_text(tmp_path, extra).splitlines().index('schedule = "61 4 * * *"') + 1
    with pytest.raises(ConfigError) as bad:
        make_config(tmp_path, extra)
    assert "backup.schedule" in str(bad.value) and f"line {line}" in str(bad.value)
    assert "minute: 61 is outside 0-59" in str(bad.value)
    with pytest.raises(ConfigError, match="needs dest"):
        make_config(tmp_path, '[backup]\nschedule = "15 4 * * *"\n')
    with pytest.raises(ConfigError, match=r"backup\.keep"):
        parse_config(f'[backup]\ndest = "{tmp_path}"\nkeep = 0\n')


@pytest.fixture
def scheduled(tmp_path: Path, template: Path) -> Iterator[tuple[SweepScheduler, FixedClock]]:
    make_station(tmp_path, template)
    dest = tmp_path / "backups"
    cfg = make_config(tmp_path, f'[backup]\nschedule = "15 4 * * *"\ndest = "{dest}"\nkeep = 2\n')
    clock = FixedClock(NOW)
    led = open_ledger(cfg.ledger.url)
    yield SweepScheduler(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts)), clock
    led.close()


def test_the_scheduled_backup_runs_and_keeps_the_newest(
    scheduled: tuple[SweepScheduler, FixedClock],
) -> None:
    sched, clock = scheduled
    assert sched.jobs()["backup"] == "15 4 * * *"
    sched.start()
    try:
        assert sched.next_runs()["backup"] is not None
    finally:
        sched.shutdown()
    dest = sched.config.backup.dest
    assert dest is not None
    dest.mkdir()
    (dest / "notes.txt").write_text("not a backup")
    other = dest / backup_name("st-other", NOW - DAY, "sqlite")  # another station's
    other.write_bytes(b"")
    for _ in range(3):
        sched.stop.clear()
        sched.run_job("backup")
        clock.advance(DAY)
    ours = [backup_name("st-test", NOW + n * DAY, "sqlite") for n in (1, 2)]
    assert sorted(p.name for p in dest.iterdir()) == sorted([*ours, "notes.txt", other.name])
    ledger = sched.config.ledger.url.removeprefix("sqlite:///")
    assert counts(dest / ours[-1]) == counts(Path(ledger))
    with sched.ctx.ledger.session() as s:
        assert not list(s.scalars(select(Alert)))


def test_a_failed_scheduled_backup_raises_an_alert(
    scheduled: tuple[SweepScheduler, FixedClock],
) -> None:
    sched, _ = scheduled
    dest = sched.config.backup.dest
    assert dest is not None
    dest.write_text("a file where the backup directory should be")
    sched.run_job("backup")
    with sched.ctx.ledger.session() as s:
        (alert,) = s.scalars(select(Alert))
        assert (alert.kind, alert.subject, alert.severity) == (
            "backup.failed",
            "backup",
            "critical",
        )
        assert f"dockd ledger backup {dest}" in alert.message


# ------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_backup_dumps_a_verified_snapshot_that_pg_restore_restores(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = pg_server.new_database()
    url = plain.replace(f"//{pg_server.user}@", f"//{pg_server.user}:s3cret@")  # trust: ignored
    cfg = make_config(tmp_path, ledger_url=url)
    clock = FixedClock(NOW)
    card = make_recorder(tmp_path / "rec", clips=2, extras=False)
    led = open_ledger(url)
    register(led, clock, card)
    assert run_ingest(
        Context(cfg, led, clock, AlertSink(led, "st-test", clock, cfg.alerts)), card.root
    ).ok
    with led.session() as s:
        head = audit.head(s)
    led.close()
    ran: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.run

    def spy(cmd: list[str], **kw: Any) -> Any:
        ran.append((cmd, kw["env"]))
        return real(cmd, **kw)

    monkeypatch.setattr(subprocess, "run", spy)
    result = backup(url, tmp_path, station="st-test", at=NOW)
    monkeypatch.undo()
    assert result.path == tmp_path / backup_name("st-test", NOW, "postgresql")
    assert result.checked.ok and "pg_restore --list" in result.checked.how
    assert (result.checked.events, result.checked.head) == (head.count, head.hash)
    assert [cmd[0] for cmd, _ in ran] == ["pg_dump", "pg_restore"]
    assert all("s3cret" not in " ".join(cmd) for cmd, _ in ran)  # never on a command line
    assert all(env["PGPASSWORD"] == "s3cret" for _, env in ran)
    assert stat.S_IMODE(result.path.stat().st_mode) in (0o600, 0o640)

    # The restore docs/operations.md gives: pg_restore into a new, empty database.
    fresh = pg_server.new_database()
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg_server.port)}
    env["PGUSER"] = pg_server.user
    subprocess.run(
        [
            "pg_restore",
            "--no-owner",
            "--exit-on-error",
            "--dbname",
            fresh.rsplit("/", 1)[1],
            str(result.path),
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    restored = open_ledger(fresh, create=False)
    try:
        with restored.session() as s:
            check = audit.verify(s)
    finally:
        restored.close()
    assert check.ok, check.problems
    assert (check.events_checked, check.head.hash) == (head.count, head.hash)
