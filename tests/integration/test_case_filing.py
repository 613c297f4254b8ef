"""Cases end, and their footage is filed within 30 days (issue 15; 004 全过程 §25): closing
by import or by hand (audited, retention follows), reopening, the case-filing report,
the archive sweep filing closed cases and alerting the ones past due."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth.roles import Role
from dockd.config import load_config
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, ArchiveCopy, AuditEvent, Case, Recording
from dockd.policy.retention import NEVER
from fixtures.make_recorder import make_recorder
from tests.helpers.station import write_config

Cli = Callable[..., tuple[int, str]]
T = TypeVar("T")
CASE = "A2026-001"


def _config(tmp_path: Path, archive: bool) -> str:
    target = f"""
[[archive.targets]]
name = "disk2"
path = "{tmp_path / "archive"}"
"""
    return target if archive else ""


@pytest.fixture(params=[False], ids=["no-archive-target"])
def archive(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, archive: bool) -> Path:
    if archive:
        (tmp_path / "archive").mkdir()
    path = write_config(tmp_path, _config(tmp_path, archive))
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    return path


@pytest.fixture
def cli(config: Path, cli_as: Callable[..., Cli]) -> Cli:
    return cli_as("keeper", Role.DEVICE_MANAGER, Role.CUSTODIAN, Role.ADMIN)


def cases_csv(tmp_path: Path, badge: str, closed: str | None) -> Path:
    path = tmp_path / f"cases-{closed}.csv"
    head = "case_number,officer_badge,start,end,cause,party"
    line = f"{CASE},{badge},2026-03-15 06:00,2026-03-15 12:00,traffic accident,Wang Wu"
    if closed is not None:
        head, line = head + ",结案时间", line + f",{closed}"
    path.write_text(f"{head}\n{line}\n", encoding="utf-8")
    return path


@pytest.fixture
def docked(cli: Cli, tmp_path: Path) -> str:
    """A recorder of 2026-03-15 docked and its case imported (open): the officer's badge."""
    rec = make_recorder(tmp_path / "rec", clips=2, extras=False)
    for step in (
        ("devices", "add", rec.device_number, "--serial", rec.serial),
        ("officers", "add", rec.badge, "--name", "Zhang Wei"),
        ("assign", rec.device_number, rec.badge, "--from", "2026-01-01"),
        ("ingest", str(rec.root)),
        ("cases", "import", str(cases_csv(tmp_path, rec.badge, None))),
    ):
        code, out = cli(*step)
        assert code == 0, out
    return rec.badge


def query(config: Path, fn: Callable[[Session], T]) -> T:
    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        with led.read() as s:
            return fn(s)
    finally:
        led.close()


def expiries(config: Path) -> set[datetime | None]:
    def of(s: Session) -> set[datetime | None]:
        rows = s.scalars(select(Recording).where(Recording.case_number == CASE))
        return {r.expires_at for r in rows}

    return query(config, of)


def tagged(config: Path) -> int:
    def count(s: Session) -> int:
        rows = s.scalars(select(Recording.id).where(Recording.case_number == CASE))
        return len(list(rows))

    n = query(config, count)
    assert n > 0
    return n


def report(cli: Cli) -> list[dict[str, object]]:
    code, out = cli("report", "case-filing", "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


def test_closing_by_hand_is_audited_and_retention_follows(
    cli: Cli, config: Path, docked: str
) -> None:
    assert expiries(config) <= {None, NEVER}  # evidence of an open case is kept
    code, out = cli("cases", "close", CASE, "--at", "2026-10-01", "--reason", "judgment final")
    assert code == 0, out
    assert "to be filed by 2026-10-31" in out
    ends = expiries(config)
    assert ends and all(e is not None and e > datetime(2026, 10, 1, tzinfo=UTC) for e in ends)

    def events(s: Session) -> list[tuple[str, str, dict[str, object]]]:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.subject_type == "case"))
        return [(e.action, e.actor, json.loads(e.details)) for e in rows]

    trail = query(config, events)
    action, actor, details = trail[-1]
    assert (action, actor, details["reason"]) == ("case.closed", "keeper", "judgment final")

    code, out = cli("cases", "close", CASE, "--reason", "again")
    assert code != 0 and "closed already (on 2026-10-01" in out
    code, out = cli("cases", "close", "NO-SUCH", "--reason", "x")
    assert code != 0 and "cases import" in out

    assert cli("cases", "reopen", CASE, "--reason", "appeal filed")[0] == 0
    assert expiries(config) == {NEVER}  # waits for the case again
    code, out = cli("cases", "close", CASE, "--at", "2099-01-01", "--reason", "x")
    assert code != 0 and "in the future" in out


def test_the_case_systems_closing_date_comes_with_the_import(
    cli: Cli, config: Path, docked: str, tmp_path: Path
) -> None:
    assert cli("cases", "import", str(cases_csv(tmp_path, docked, "2026-09-30 17:00")))[0] == 0

    def closed(s: Session) -> set[datetime | None]:
        return {c.closed_at for c in s.scalars(select(Case))}

    [when] = query(config, closed)
    assert when == datetime(2026, 9, 30, 9, 0, tzinfo=UTC)
    # An export without the column later leaves the closing alone.
    assert cli("cases", "import", str(cases_csv(tmp_path, docked, None)))[0] == 0
    assert query(config, closed) == {when}
    _, out = cli("cases", "list", "--format", "json")
    assert json.loads(out)[0]["closed_at"].startswith("2026-09-30T17:00")


def test_a_closed_case_unfiled_past_its_date_is_reported_and_alerted(
    cli: Cli, config: Path, docked: str
) -> None:
    assert report(cli) == []  # nothing closed
    n = tagged(config)
    recent = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    assert cli("cases", "close", CASE, "--at", recent, "--reason", "closed")[0] == 0
    [row] = report(cli)
    assert (row["case"], row["unfiled"], row["status"]) == (CASE, n, "due")
    assert cli("sweep", "archive")[0] == 0  # no target: nothing filed, not yet late

    def alerts(s: Session) -> list[str]:
        rows = s.scalars(select(Alert).where(Alert.kind == "case.not_filed"))
        return [a.message for a in rows]

    assert query(config, alerts) == []

    assert cli("cases", "reopen", CASE, "--reason", "wrong date")[0] == 0
    assert cli("cases", "close", CASE, "--at", "2026-09-01", "--reason", "closed")[0] == 0
    [row] = report(cli)
    assert (row["due"], row["status"]) == ("2026-10-01", "OVERDUE")
    assert cli("sweep", "archive")[0] == 0
    [message] = query(config, alerts)
    assert f"case {CASE} closed on 2026-09-01: {n} of its {n} file(s) are not filed" in message
    assert cli("sweep", "archive")[0] == 0
    assert len(query(config, alerts)) == 1

    # Handed over in the quarterly package: filed.
    assert cli("handover", "--quarter", "2026Q1")[0] == 0
    [row] = report(cli)
    assert (row["filed"], row["unfiled"], row["status"]) == (n, 0, "filed")


@pytest.mark.parametrize("archive", [True], ids=["archive-target"], indirect=True)
def test_the_archive_sweep_files_closed_cases(cli: Cli, config: Path, docked: str) -> None:
    assert cli("sweep", "archive")[0] == 0
    assert report(cli) == []  # open case: not archived (only held files by default)
    assert cli("cases", "close", CASE, "--at", "2026-09-01", "--reason", "closed")[0] == 0
    assert report(cli)[0]["status"] == "OVERDUE"
    code, out = cli("sweep", "archive")
    assert code == 0, out
    [row] = report(cli)
    assert (row["filed"], row["status"]) == (tagged(config), "filed")

    # A copy the fixity sweep found damaged files nothing (until it is made again).
    def damage(s: Session) -> int:
        copy = s.scalars(select(ArchiveCopy)).first()
        assert copy is not None
        copy.fixity_status = "modified"
        return copy.file_id

    cfg = load_config(config)
    led = open_ledger(cfg.ledger.url)
    try:
        with led.session() as s:
            damage(s)
    finally:
        led.close()
    [row] = report(cli)
    assert (row["unfiled"], row["status"]) == (1, "OVERDUE")
