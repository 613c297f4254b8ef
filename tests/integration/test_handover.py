"""The quarterly hand-over to the archivist (issue 15, R3): the quarter's long-kept footage
as a verified bag with a hand-over record, made once, received by someone else after
checking it, and made by the daemon's scheduled check."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import bagit
import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.clock import FixedClock
from dockd.config import load_config
from dockd.daemon.scheduler import SWEEPS, SweepScheduler
from dockd.evidence import bag, handover
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import AuditEvent, Handover, Recording
from fixtures.make_recorder import make_recorder
from tests.helpers.accounts import act_as_new

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def config(station_toml: Path) -> Path:
    return station_toml


@pytest.fixture
def cli(config: Path, cli_as: Callable[..., Cli]) -> Cli:
    """``dockd ARGS...`` run by the device manager who collects the footage."""
    return cli_as("collector", Role.DEVICE_MANAGER, Role.CUSTODIAN, Role.LEGAL)


def _ledger(config: Path) -> Ledger:
    cfg = load_config(config)
    return open_ledger(cfg.ledger.url)


@pytest.fixture
def docked(cli: Cli, config: Path, tmp_path: Path) -> list[int]:
    """A recorder of 2026-03-15 (2026Q1) docked: file ids in recording order; the first
    tagged with a case, the second held, the rest routine."""
    rec = make_recorder(tmp_path / "rec", clips=4, extras=False)
    for step in (
        ("devices", "add", rec.device_number, "--serial", rec.serial),
        ("officers", "add", rec.badge, "--name", "Zhang Wei"),
        ("assign", rec.device_number, rec.badge, "--from", "2026-01-01"),
        ("ingest", str(rec.root)),
    ):
        code, out = cli(*step)
        assert code == 0, out
    led = _ledger(config)
    with led.read() as s:
        ids = list(s.scalars(select(Recording.id).order_by(Recording.recorded_start)))
    led.close()
    assert len(ids) == len(rec.recordings) >= 3
    code, out = cli("tag", str(ids[0]), "--case", "A2026-001", "--reason", "traffic accident")
    assert code == 0, out
    code, out = cli("hold", "add", "--file", str(ids[1]), "--reason", "complaint")
    assert code == 0, out
    return ids


def test_the_quarter_is_handed_over_once_as_a_verified_bag_with_its_record(
    cli: Cli, config: Path, docked: list[int]
) -> None:
    code, out = cli("handover", "--quarter", "2026Q1")
    assert code == 0, out
    assert "2 file(s)" in out and "dockd handover receive" in out

    led = _ledger(config)
    try:
        with led.read() as s:
            [row] = s.scalars(select(Handover)).all()
            files = {r.id: r for r in s.scalars(select(Recording))}
            exports = s.scalars(select(AuditEvent).where(AuditEvent.action == "file.export"))
            exported = {int(e.subject_id): json.loads(e.details) for e in exports}
            [made] = s.scalars(select(AuditEvent).where(AuditEvent.action == "handover.made"))
    finally:
        led.close()
    # The case's file and the held file: the routine ones stay at the station.
    assert set(exported) == {docked[0], docked[1]}
    assert all(
        d["reason"] == "quarterly hand-over of 2026Q1 to the archive" for d in exported.values()
    )
    assert made.actor == "collector" and json.loads(made.details)["files"] == 2

    where = Path(row.path)
    assert where == load_config(config).store.root.parent / "handover" / "2026Q1"
    bag.validate(where)  # as the archivist's tools would
    record = (where / handover.RECORD_HTML).read_text(encoding="utf-8")
    for file_id in (docked[0], docked[1]):
        assert files[file_id].blake3 in record
    for routine in docked[2:]:
        assert files[routine].blake3 not in record
    assert "移交人签名" in record and "接收人签名" in record and "单位盖章" in record
    assert "A2026-001" in record and "Zhang Wei" in record
    assert (row.files, row.bytes) == (2, files[docked[0]].size_bytes + files[docked[1]].size_bytes)

    code, out = cli("handover", "--quarter", "2026Q1")
    assert code != 0 and "handed over already" in out
    code, out = cli("handover", "--quarter", "2099Q1")
    assert code != 0 and "has not ended yet" in out
    code, out = cli("handover", "--quarter", "2026-Q1")
    assert code != 0 and "write it as 2026Q4" in out
    code, out = cli("handover", "--quarter", "2025Q4")
    assert code != 0 and "nothing to hand over" in out


def test_the_receipt_checks_the_bag_and_comes_from_someone_else(
    cli: Cli, config: Path, docked: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("handover", "--quarter", "2026Q1")[0] == 0
    code, out = cli("handover", "list", "--format", "json")
    [listed] = json.loads(out)
    assert listed["quarter"] == "2026Q1" and listed["received_by"] is None
    hid = str(listed["id"])

    code, out = cli("handover", "receive", hid)
    assert code != 0 and "someone else" in out

    act_as_new(monkeypatch, "archivist", Role.CUSTODIAN)
    where = Path(listed["bag"])
    record = where / handover.RECORD_HTML
    original = record.read_bytes()
    record.chmod(0o644)
    record.write_bytes(original.replace(b"Zhang Wei", b"Zhang Wex"))
    code, out = cli("handover", "receive", hid)
    assert code != 0 and "does not validate" in out
    record.write_bytes(original)
    assert cli("handover", "receive", hid, "--note", "2 files, seal intact")[0] == 0

    code, out = cli("handover", "list", "--format", "json")
    [listed] = json.loads(out)
    assert listed["received_by"] == "archivist" and listed["received"]
    code, out = cli("handover", "receive", hid)
    assert code != 0 and "was received by archivist" in out


def test_a_bag_that_validates_but_is_another_one_is_refused(
    cli: Cli, config: Path, docked: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert cli("handover", "--quarter", "2026Q1")[0] == 0
    # Another, valid bag of the same footage (an export made under a grant is one too).
    other = tmp_path / "other"
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        with led.read() as s:
            [row] = s.scalars(select(Handover)).all()
        payload = Path(row.path)
        for name in ("bagit.txt", "bag-info.txt", "manifest-sha256.txt"):
            assert (payload / name).exists()
    finally:
        led.close()

    shutil.copytree(payload, other)
    for f in other.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    # Someone re-labels it and re-bags it with bagit-python: valid, but not the same bag.
    info = other / "bag-info.txt"
    info.write_text(info.read_text(encoding="utf-8") + "Note: relabelled\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    bagit.Bag(str(other)).save()
    bag.validate(other)  # a bag in its own right ...
    act_as_new(monkeypatch, "archivist", Role.CUSTODIAN)
    code, out = cli("handover", "receive", str(row.id), "--path", str(other))
    assert code != 0 and "not the one handed over" in out  # ... but not this hand-over


def test_the_daemon_hands_over_the_quarter_just_ended_once(
    cli: Cli, config: Path, docked: list[int]
) -> None:
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    clock = FixedClock(datetime(2026, 4, 2, 1, 0, tzinfo=UTC))
    try:
        sched = SweepScheduler(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
        assert sched.jobs()["handover"] == "0 6 * * *"
        assert "handover" in SWEEPS
        sched.run_job("handover")
        sched.run_job("handover")  # the next day's check: done already, nothing more
        with led.read() as s:
            rows = s.scalars(select(Handover)).all()
        assert [(r.quarter, r.made_by, r.files) for r in rows] == [("2026Q1", "dockd", 2)]
        assert handover.previous_quarter(clock.now(), cfg).name == "2026Q1"
        # Early January belongs to Q1: the quarter just ended is last year's Q4.
        jan = datetime(2027, 1, 1, 0, 30, tzinfo=cfg.station.tz)
        assert handover.previous_quarter(jan, cfg).name == "2026Q4"
    finally:
        led.close()
