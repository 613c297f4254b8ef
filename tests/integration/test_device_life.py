"""A recorder's life after registration (issue 15): a named custodian, a service record,
disposal, its history, and the coverage of officers by recorders per unit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.roles import Role
from dockd.config import load_config
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, AuditEvent, Recording
from fixtures.make_recorder import make_recorder
from tests.helpers.accounts import act_as, act_as_new, add_account

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def config(station_toml: Path) -> Path:
    return station_toml


@pytest.fixture
def cli(config: Path, cli_as: Callable[..., Cli]) -> Cli:
    """``dockd ARGS...`` run by a device manager (who may also ingest as custodian)."""
    return cli_as("desk", Role.DEVICE_MANAGER, Role.CUSTODIAN)


def events(config: Path, action: str) -> list[AuditEvent]:
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        with led.read() as s:
            rows = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))
            s.expunge_all()
            return rows
    finally:
        led.close()


def as_json(cli: Cli, *args: str) -> list[dict[str, object]]:
    code, out = cli(*args, "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


def test_a_custodian_is_an_account_and_the_change_is_audited(cli: Cli, config: Path) -> None:
    assert cli("devices", "add", "DV-0001", "--serial", "S1")[0] == 0
    code, out = cli("devices", "custodian", "DV-0001", "nobody.here", "--reason", "issued")
    assert code != 0
    assert "no account 'nobody.here'" in out and "dockd users add nobody.here" in out

    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    add_account(led, "liu.yang", Role.CUSTODIAN, station=cfg.station.id)
    led.close()
    code, out = cli("devices", "custodian", "DV-0001", "liu.yang", "--reason", "issued")
    assert code == 0, out
    [row] = as_json(cli, "devices", "list")
    assert row["custodian"] == "liu.yang"

    [event] = events(config, "device.custodian")
    assert event.actor == "desk" and event.subject_id == "DV-0001"
    details = json.loads(event.details)
    assert (details["old"], details["new"], details["reason"]) == (None, "liu.yang", "issued")

    code, out = cli("devices", "custodian", "DV-0001", "liu.yang", "--reason", "again")
    assert code != 0 and "already the custodian" in out


def test_only_device_managers_keep_the_service_record(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("devices", "add", "DV-0001")[0] == 0
    act_as_new(monkeypatch, "reader", Role.AUDITOR)
    code, out = cli("devices", "service", "DV-0001", "--kind", "repair", "--note", "x")
    assert code == 77
    assert "needs the role device-manager or admin" in out
    # ... but an auditor reads the history
    assert cli("devices", "history", "DV-0001")[0] == 0
    assert events(config, "device.repair") == []


def test_history_tells_the_life_of_a_recorder_in_order(cli: Cli, config: Path) -> None:
    steps = [
        ("devices", "add", "DV-0001", "--in-service-since", "2026-01-01"),
        ("officers", "add", "012345", "--name", "Zhang Wei"),
        ("assign", "DV-0001", "012345", "--from", "2026-01-05"),
        ("devices", "service", "DV-0001", "--kind", "maintenance", "--note", "battery checked",
         "--at", "2026-02-01T10:00"),
        ("devices", "service", "DV-0001", "--kind", "repair", "--note", "USB port replaced",
         "--reference", "WO-118", "--at", "2026-03-01T09:00"),
    ]  # fmt: skip
    for step in steps:
        code, out = cli(*step)
        assert code == 0, out
    code, out = cli("devices", "service", "DV-0001", "--kind", "repair", "--note", "x",
                    "--at", "2099-01-01")  # fmt: skip
    assert code != 0 and "in the future" in out
    code, out = cli("devices", "service", "DV-0001", "--kind", "polish", "--note", "x")
    assert code != 0 and "maintenance or repair" in out

    history = as_json(cli, "devices", "history", "DV-0001")
    whats = [r["what"] for r in history]
    assert whats[0] == "registered"
    assert whats[1:] == ["assigned", "maintenance", "repair"]
    repair = history[-1]
    assert repair["detail"] == "USB port replaced"
    assert repair["reference"] == "WO-118" and repair["by"] == "desk"
    [event] = events(config, "device.repair")
    assert json.loads(event.details)["reference"] == "WO-118"


def test_a_disposed_recorder_ends_its_assignment_and_is_still_taken_when_docked(
    cli: Cli, config: Path, tmp_path: Path
) -> None:
    rec = make_recorder(tmp_path / "rec", clips=2, extras=False)
    for step in (
        ("devices", "add", rec.device_number, "--serial", rec.serial),
        ("officers", "add", rec.badge, "--name", "Zhang Wei"),
        ("assign", rec.device_number, rec.badge, "--from", "2020-01-01"),
    ):
        assert cli(*step)[0] == 0
    code, out = cli(
        "devices", "dispose", rec.device_number, "--reason", "water damage", "--reference", "BF-7"
    )
    assert code == 0, out
    assert f"ended its assignment to badge {rec.badge}" in out

    history = as_json(cli, "devices", "history", rec.device_number)
    assert [r["what"] for r in history][-2:] == ["unassigned", "disposed"]
    assert history[-1]["detail"] == "water damage"
    [event] = events(config, "device.disposed")
    assert json.loads(event.details)["reference"] == "BF-7"

    # A disposed recorder that turns up at the dock: nothing dropped, a critical alert.
    code, out = cli("ingest", str(rec.root))
    assert code == 0, out
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        with led.read() as s:
            stored = s.scalars(select(Recording)).all()
            alerts = s.scalars(select(Alert).where(Alert.kind == "device.disposed")).all()
            assert len(stored) == len(rec.recordings)
            assert [a.severity for a in alerts] == ["critical"]
            assert rec.device_number in alerts[0].message
    finally:
        led.close()
    # and it cannot be given a custodian any more
    code, out = cli("devices", "custodian", rec.device_number, "desk", "--reason", "x")
    assert code != 0 and "disposed" in out


def test_coverage_counts_officers_per_recorder_in_service_per_unit(
    cli: Cli, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 8):  # 7 officers of the station's unit, 2 of another
        assert cli("officers", "add", f"1000{n}", "--name", f"Officer {n}")[0] == 0
    for n in (8, 9):
        assert cli("officers", "add", f"1000{n}", "--name", f"O {n}", "--unit", "Traffic")[0] == 0
    for number in ("DV-1", "DV-2", "DV-3"):
        assert cli("devices", "add", number)[0] == 0
    assert cli("devices", "add", "DV-T", "--unit", "Traffic")[0] == 0
    assert cli("assign", "DV-1", "10001", "--from", "2026-01-01")[0] == 0
    assert cli("devices", "custodian", "DV-1", "desk", "--reason", "kept at the desk")[0] == 0

    rows = {r["unit"]: r for r in as_json(cli, "report", "coverage")}
    station = rows["Test Station"]
    assert (station["officers"], station["devices_in_service"]) == (7, 3)
    assert station["meets"] == "yes" and station["officers_per_device"] == 2.3
    assert (station["without_custodian"], station["unassigned"]) == (2, 2)
    assert (rows["Traffic"]["officers"], rows["Traffic"]["devices_in_service"]) == (2, 1)

    # Two recorders out of service: 7 officers on one recorder is more than 3 per recorder.
    assert cli("devices", "dispose", "DV-2", "--reason", "broken")[0] == 0
    assert cli("devices", "retire", "DV-3", "--reason", "old")[0] == 0
    station = {r["unit"]: r for r in as_json(cli, "report", "coverage")}["Test Station"]
    assert station["devices_in_service"] == 1 and station["meets"] == "NO"

    act_as(monkeypatch, None)  # as root without sudo (the system account): still an admin
    assert cli("report", "coverage")[0] == 0
