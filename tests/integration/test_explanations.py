"""Written explanations of missing footage (issue 15, R12) on a real ledger: a gap
explained by its officer and approved by legal shows as explained in the gap report,
nobody approves their own, and a gap left unexplained past
``[reports] explain_gaps_within_days`` raises an alert from the scheduled check.

The recorder's three clips start a minute apart and last two seconds; with
``gap_minutes = 0.5`` the two breaks between them are gaps (06:30:23-06:31:02, after
the audio note, and 06:31:04-06:32:04, 2026-03-15 Asia/Shanghai). dockd runs
in-process as ``sudo dockd`` by each account would (tests/helpers/accounts.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ledger import audit
from dockd.ledger.models import Alert, AuditEvent
from dockd.reports.duties import run_duties
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import add_account
from tests.helpers.ledgers import BACKENDS, docked_station, ledger_url_of
from tests.helpers.station import NOW

EXTRA = "[reports]\ngap_minutes = 0.5\n"
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=3, extras=False)


@pytest.fixture
def station(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    rec: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Context]:
    """The station on SQLite, or PostgreSQL with ``parametrize("station", BACKENDS, ...)``."""
    ctx = docked_station(
        tmp_path, monkeypatch, rec, ledger_url=ledger_url_of(request), now=NOW, extra=EXTRA
    )
    yield ctx
    ctx.ledger.close()


@pytest.fixture
def people(station: Context) -> dict[str, int]:
    return {
        "olga": add_account(station.ledger, "olga", "officer"),
        "lena": add_account(station.ledger, "lena", "legal"),
        "leo": add_account(station.ledger, "leo", "leader"),
        "aude": add_account(station.ledger, "aude", "auditor"),
    }


@pytest.fixture
def run(run_as: Run) -> Run:
    return run_as


def gaps(run: Run, uid: int) -> list[dict[str, object]]:
    code, out, err = run(uid, "report", "gaps", "--format", "json")
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def explain_first_gap(run: Run, uid: int) -> int:
    code, out, err = run(
        uid, "explain", "gap", "--device", "DV-0001",
        "--from", "2026-03-15T06:30", "--to", "2026-03-15T06:31:30",
        "--reason", "battery swapped during the stop",
    )  # fmt: skip
    assert code == 0, err
    return int(out.split("#")[1].split()[0])


@pytest.mark.parametrize("station", BACKENDS, indirect=True)
def test_an_explained_and_an_unexplained_gap_in_the_gap_report(
    station: Context, people: dict[str, int], run: Run
) -> None:
    before = gaps(run, people["aude"])
    assert [(g["gap_from"], g["explained"]) for g in before] == [
        ("2026-03-15T06:30:23+08:00", "no"),
        ("2026-03-15T06:31:04+08:00", "no"),
    ]
    number = explain_first_gap(run, people["olga"])
    first, second = gaps(run, people["aude"])
    assert (first["explained"], first["explanation"]) == ("pending", number)
    assert (second["explained"], second["explanation"]) == ("no", None)

    code, out, err = run(people["lena"], "explain", "approve", str(number))
    assert code == 0, err
    assert "approved by lena" in out
    first, second = gaps(run, people["aude"])
    assert (first["explained"], first["explanation"]) == ("approved", number)
    assert second["explained"] == "no"

    code, out, _ = run(people["aude"], "explain", "list", "--format", "json")
    (row,) = json.loads(out)
    assert (row["written_by"], row["approved_by"], row["device"]) == ("olga", "lena", "DV-0001")
    assert row["reason"] == "battery swapped during the stop"

    with station.ledger.read() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.subject_type == "explanation")))
        assert audit.verify_chain(s).ok
        view = s.execute(text("SELECT kind, written_by, approved_by FROM v_explanations"))
        assert [tuple(r) for r in view] == [("gap", "olga", "lena")]
    assert [(e.action, e.actor) for e in events] == [
        ("explanation.add", "olga"),
        ("explanation.approve", "lena"),
    ]


def test_nobody_approves_their_own_and_only_leader_or_legal_approve(
    station: Context, people: dict[str, int], run: Run
) -> None:
    own = explain_first_gap(run, people["leo"])
    code, _, err = run(people["leo"], "explain", "approve", str(own))
    assert code == 77 and "nobody approves their own" in err
    code, _, err = run(people["olga"], "explain", "approve", str(own))
    assert code == 77 and "legal or leader" in err
    code, _, err = run(people["aude"], "explain", "gap", "--device", "DV-0001",
                       "--from", "2026-03-15", "--to", "2026-03-15", "--reason", "x")  # fmt: skip
    assert code == 77  # the auditor changes nothing
    code, out, _ = run(people["aude"], "explain", "list", "--pending", "--format", "json")
    assert [r["id"] for r in json.loads(out)] == [own]
    assert run(people["lena"], "explain", "approve", str(own))[0] == 0
    code, _, err = run(people["leo"], "explain", "approve", str(own))
    assert code == 64 and "already approved by lena" in err


def test_a_non_recording_is_explained_for_an_officer(
    station: Context, people: dict[str, int], run: Run
) -> None:
    code, out, err = run(
        people["olga"], "explain", "non-recording", "--officer", "012345",
        "--at", "2026-03-15T09:00", "--reason", "recorder left charging at the station",
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(people["aude"], "explain", "list", "--officer", "012345", "-f", "json")
    (row,) = json.loads(out)
    assert (row["kind"], row["from"], row["to"]) == (
        "non-recording",
        "2026-03-15T09:00:00+08:00",
        "2026-03-15T09:00:00+08:00",
    )
    code, _, err = run(people["olga"], "explain", "non-recording", "--officer", "999999",
                       "--at", "2026-03-15T09:00", "--reason", "x")  # fmt: skip
    assert code == 66 and "999999" in err


def test_unexplained_gaps_alert_once_they_are_older_than_the_limit(
    station: Context, people: dict[str, int], run: Run
) -> None:
    clock = station.clock
    assert isinstance(clock, FixedClock)
    clock.advance(timedelta(days=2))  # within the 7 days: nothing yet
    assert run_duties(station).unexplained_gaps == []
    explain_first_gap(run, people["olga"])  # written, awaiting approval: not "unexplained"
    clock.advance(timedelta(days=6))
    result = run_duties(station)
    assert [g["gap_from"] for g in result.unexplained_gaps] == ["2026-03-15T06:31:04+08:00"]
    run_duties(station)  # the next day's check: the same gap, no second alert
    with station.ledger.read() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.kind == "gap.unexplained")))
    (alert,) = alerts
    assert alert.subject == "DV-0001" and alert.occurrences == 1
    assert "06:31:04" in alert.message and "dockd explain gap" in alert.message


def test_sweep_duties_runs_the_check_now(station: Context, run: Run) -> None:
    """``dockd sweep duties`` (an admin, today's clock): March's gaps are long unexplained,
    and no inspection was recorded since the ledger began (2025-12-01)."""
    code, out, err = run(None, "sweep", "duties", "--format", "json")
    assert code == 1, err
    assert [g["gap_from"] for g in json.loads(out)] == [
        "2026-03-15T06:30:23+08:00",
        "2026-03-15T06:31:04+08:00",
    ]
    assert '"inspection_overdue": true, "alerts_raised": 3' in err
    with station.ledger.read() as s:
        kinds = sorted(a.kind for a in s.scalars(select(Alert)))
    assert kinds.count("gap.unexplained") == 2
