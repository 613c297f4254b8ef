"""The inspection register 检查台账 (issue 15, R16) on a real ledger: a supervisor records
an inspection of devices and real ingested files, the register reads back as a report,
and the scheduled check reminds when none is recorded within ``[inspection]
every_months`` (6): it fires when overdue, naming the last inspection, and not while
one is recorded within the period.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ledger.models import Alert, AuditEvent
from dockd.reports.duties import run_duties
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import add_account
from tests.helpers.ledgers import BACKENDS, docked_station, ledger_url_of
from tests.helpers.station import NOW

TZ = ZoneInfo("Asia/Shanghai")
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def station(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Context]:
    """The station's ledger begins on 2025-12-01: its first event, the recorder registered
    (SQLite, or PostgreSQL with ``parametrize("station", BACKENDS, indirect=True)``)."""
    ctx = docked_station(tmp_path, monkeypatch, rec, ledger_url=ledger_url_of(request), now=NOW)
    yield ctx
    ctx.ledger.close()


@pytest.fixture
def people(station: Context) -> dict[str, int]:
    return {
        "leo": add_account(station.ledger, "leo", "leader"),
        "aude": add_account(station.ledger, "aude", "auditor"),
        "olga": add_account(station.ledger, "olga", "officer"),
    }


@pytest.fixture
def run(run_as: Run) -> Run:
    return run_as


def inspect(run: Run, uid: int, day: str, files: str = "1,2") -> tuple[int, str, str]:
    return run(
        uid, "inspection", "record", "--date", day, "--devices", "DV-0001", "--files", files,
        "--findings", "two clips checked: complete, tagged", "--follow-up", "none needed",
    )  # fmt: skip


def overdue_alerts(ctx: Context) -> list[Alert]:
    with ctx.ledger.read() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == "inspection.overdue")))


def at(ctx: Context, day: datetime) -> None:
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.set(day)


@pytest.mark.parametrize("station", BACKENDS, indirect=True)
def test_an_inspection_is_recorded_and_reported(
    station: Context, people: dict[str, int], run: Run
) -> None:
    code, out, err = inspect(run, people["leo"], "2026-03-20")
    assert code == 0, err
    assert "recorded by leo" in out
    code, out, err = run(people["aude"], "inspection", "list", "--format", "json")
    assert code == 0, err
    (row,) = json.loads(out)
    assert (row["date"], row["inspector"], row["devices"], row["files"]) == (
        "2026-03-20",
        "leo",
        ["DV-0001"],
        [1, 2],
    )
    assert (row["findings"], row["follow_up"]) == (
        "two clips checked: complete, tagged",
        "none needed",
    )
    code, out, _ = run(people["aude"], "inspection", "list", "--format", "csv")
    (line,) = csv.DictReader(io.StringIO(out))
    assert (line["date"], line["devices"], line["files"]) == ("2026-03-20", "DV-0001", "1,2")
    code, out, _ = run(people["aude"], "inspection", "list", "--from", "2026-04-01", "-f", "json")
    assert json.loads(out) == []
    with station.ledger.read() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "inspection.record"))
    assert event.actor == "leo" and json.loads(event.details)["files"] == [1, 2]
    with station.ledger.read() as s:  # the auditors' SQL view
        view = s.execute(text("SELECT inspected_on, inspector, devices FROM v_inspections"))
        assert [tuple(r) for r in view] == [("2026-03-20", "leo", '["DV-0001"]')]


def test_only_supervisors_record_and_only_what_exists(
    station: Context, people: dict[str, int], run: Run
) -> None:
    assert inspect(run, people["aude"], "2026-03-20")[0] == 77
    assert inspect(run, people["olga"], "2026-03-20")[0] == 77
    code, _, err = inspect(run, people["leo"], "2026-03-20", files="1,999")
    assert code == 66 and "999" in err
    code, _, err = run(people["leo"], "inspection", "record", "--devices", "DV-9",
                       "--findings", "x")  # fmt: skip
    assert code == 66 and "DV-9" in err
    code, _, err = inspect(run, people["leo"], "2099-01-01")
    assert code == 64 and "after today" in err
    code, out, _ = run(people["aude"], "inspection", "list", "-f", "json")
    assert json.loads(out) == []


def test_the_reminder_fires_when_overdue_naming_the_last_inspection(
    station: Context, people: dict[str, int], run: Run
) -> None:
    # No inspection yet: due six months after the ledger began (2025-12-01).
    at(station, datetime(2026, 5, 31, 9, 0, tzinfo=TZ))
    assert run_duties(station).inspection_overdue is False
    at(station, datetime(2026, 6, 1, 9, 0, tzinfo=TZ))
    result = run_duties(station)
    assert (result.inspection_overdue, result.last_inspection) == (True, None)
    (first,) = overdue_alerts(station)
    assert "no inspection is recorded yet" in first.message and "2026-06-01" in first.message
    run_duties(station)  # the next check: the same due date, no second alert
    assert len(overdue_alerts(station)) == 1

    assert inspect(run, people["leo"], "2026-06-02")[0] == 0
    at(station, datetime(2026, 12, 1, 9, 0, tzinfo=TZ))
    assert run_duties(station).inspection_overdue is False
    assert len(overdue_alerts(station)) == 1
    at(station, datetime(2026, 12, 2, 9, 0, tzinfo=TZ))
    result = run_duties(station)
    assert (result.inspection_overdue, result.last_inspection) == (True, "2026-06-02")
    _, second = overdue_alerts(station)
    assert "the last inspection was on 2026-06-02" in second.message
    assert "2026-12-02" in second.message


def test_no_reminder_while_an_inspection_is_recorded_within_the_period(
    station: Context, people: dict[str, int], run: Run
) -> None:
    at(station, datetime(2026, 6, 10, 9, 0, tzinfo=TZ))  # without it: overdue since 06-01
    assert inspect(run, people["leo"], "2026-06-01")[0] == 0
    result = run_duties(station)
    assert (result.inspection_overdue, result.inspection_due) == (False, "2026-12-01")
    at(station, datetime(2026, 11, 30, 9, 0, tzinfo=TZ))
    assert run_duties(station).inspection_overdue is False
    assert overdue_alerts(station) == []
