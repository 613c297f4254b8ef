"""Every command is checked against the permission table before it runs, and who acts is
the authenticated account (issue 12): in-process, as ``sudo dockd`` by a person would run.

The real OS accounts, sudo and runuser are in tests/integration/test_accounts.py (root).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.permissions import PERMISSIONS
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.config import load_config
from dockd.ledger.db import open_ledger
from dockd.ledger.models import AuditEvent, Hold
from tests.helpers.accounts import act_as, act_as_new
from tests.helpers.station import write_config


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_config(tmp_path)
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    return path


def events(conf: Path, action: str) -> list[AuditEvent]:
    led = open_ledger(load_config(conf).ledger.url)
    try:
        with led.read() as s:
            found = list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)))
            for e in found:
                s.expunge(e)
            return found
    finally:
        led.close()


@pytest.mark.parametrize(
    ("role", "args", "needed"),
    [
        (Role.DEVICE_MANAGER, ["hold", "add", "--case", "A-1", "--reason", "evidence"], "hold add"),
        (Role.AUDITOR, ["tag", "1", "--case", "A-1"], "tag"),
        (Role.CUSTODIAN, ["hold", "release", "1", "--reason", "done"], "hold release"),
        (Role.OFFICER, ["report", "holdings"], "report"),
        (Role.AUDITOR, ["devices", "add", "DV-0009", "--serial", "S9"], "devices add"),
        (Role.LEGAL, ["sweep", "retention"], "sweep retention"),
        (Role.ADMIN, ["hold", "add", "--case", "A-1", "--reason", "evidence"], "hold add"),
    ],
)
def test_a_role_the_table_does_not_name_is_refused_naming_the_missing_role(
    conf: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    role: Role,
    args: list[str],
    needed: str,
) -> None:
    act_as_new(monkeypatch, "li-na", role)
    assert main(args) == 77
    err = capsys.readouterr().err
    assert f"`dockd {needed}` needs the role" in err
    for may in PERMISSIONS[needed].roles:
        assert may.value in err
    assert f"li-na has {role.value}" in err
    assert "sudo dockd users roles li-na --add" in err
    assert events(conf, "hold.add") == []


def test_legal_releases_the_hold_a_custodian_placed_and_each_event_names_its_account(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    act_as_new(monkeypatch, "keeper-wu", Role.CUSTODIAN)
    assert main(["hold", "add", "--case", "A-1", "--reason", "evidence"]) == 0
    assert "by keeper-wu" in capsys.readouterr().out
    assert main(["hold", "release", "1", "--reason", "case closed"]) == 77
    assert "`dockd hold release` needs the role legal or leader" in capsys.readouterr().err

    act_as_new(monkeypatch, "legal-zhao", Role.LEGAL)
    assert main(["hold", "release", "1", "--reason", "case closed"]) == 0
    assert "released by legal-zhao" in capsys.readouterr().out

    [placed], [released] = events(conf, "hold.add"), events(conf, "hold.release")
    assert (placed.actor, released.actor) == ("keeper-wu", "legal-zhao")
    led = open_ledger(load_config(conf).ledger.url)
    try:
        with led.read() as s:
            hold = s.get_one(Hold, 1)
            assert (hold.placed_by, hold.released_by) == ("keeper-wu", "legal-zhao")
    finally:
        led.close()


def test_a_registry_change_is_signed_by_the_account_and_by_cannot_be_typed(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    act_as_new(monkeypatch, "dm-wang", Role.DEVICE_MANAGER)
    assert main(["devices", "add", "DV-0001", "--serial", "S1", "--by", "somebody"]) == 64
    assert "No such option: --by" in capsys.readouterr().err
    assert main(["devices", "add", "DV-0001", "--serial", "S1"]) == 0
    [event] = events(conf, "device.add")
    assert event.actor == "dm-wang"


def test_a_person_without_an_account_is_refused_before_the_command_runs(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    act_as_new(monkeypatch, "known", Role.AUDITOR)  # makes the ledger
    act_as(monkeypatch, 61999)  # a uid with no account
    assert main(["devices", "list"]) == 77
    err = capsys.readouterr().err
    assert "has no dockd account" in err and "sudo dockd users add" in err


def test_root_checks_the_config_and_migrates_a_fresh_ledger_before_any_account_exists(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Path(load_config(conf).ledger.url.removeprefix("sqlite:///"))
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    assert not ledger.exists()  # nobody was looked up for it
    assert main(["ledger", "migrate"]) == 0
    assert "ledger schema migrated from empty" in capsys.readouterr().out
    assert main(["whoami"]) == 0
    assert capsys.readouterr().out.startswith("system (")


def test_help_is_for_anyone(
    conf: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    act_as(monkeypatch, 61998)  # no account, and no ledger yet
    assert main(["hold", "add", "--help"]) == 0
    assert "--reason" in capsys.readouterr().out
