"""``dockd audit verify`` catches tampering done directly with SQL, as an insider would:
a changed file row, a deleted event, two events swapped, a forged event inserted."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import AuditEvent
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.ledgers import register
from tests.helpers.station import write_config


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """One recorder card for the whole module (ingest only reads it)."""
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@pytest.fixture
def ingested(ctx: Context, clock: FixedClock, rec: Recorder) -> list[int]:
    """The recorder's files ingested into a fresh ledger; returns the stored file ids."""
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    assert result.ok
    return [f.file_id for f in result.files if f.file_id is not None]


@pytest.fixture
def db(config: Config) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the ledger: what someone tampering with it would use."""
    conn = sqlite3.connect(config.ledger.url.removeprefix("sqlite:///"), isolation_level=None)
    yield conn
    conn.close()


def verify(ctx: Context, against: str | None = None) -> audit.Verification:
    with ctx.ledger.session() as s:
        return audit.verify(s, against=against)


def event_ids(ctx: Context) -> list[int]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def test_untouched_ledger_verifies_and_head_is_printed(
    ctx: Context,
    ingested: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = verify(ctx)
    assert result.ok, result.problems
    assert result.files_checked == len(ingested)
    assert result.head.count == len(event_ids(ctx)) == result.events_checked

    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "audit trail OK" in out
    assert f"chain head: {result.head.hash}" in out
    assert f"events: {result.head.count}" in out

    assert main(["audit", "head"]) == 0
    assert result.head.hash in capsys.readouterr().out


def test_changed_field_in_a_file_row_is_caught(
    ctx: Context,
    ingested: list[int],
    db: sqlite3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    victim = ingested[1]
    db.execute("UPDATE files SET case_number = 'FAKE-1' WHERE id = ?", (victim,))
    result = verify(ctx)
    assert not result.ok
    first = result.problems[0]
    assert first.file_id == victim
    assert "case_number" in first.message and "FAKE-1" in first.message

    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    assert main(["audit", "verify"]) == 65
    err = capsys.readouterr().err
    assert f"file {victim}: case_number" in err


def test_changed_hash_in_a_file_row_is_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    db.execute("UPDATE files SET blake3 = ? WHERE id = ?", ("0" * 64, ingested[0]))
    result = verify(ctx)
    assert [p.file_id for p in result.problems] == [ingested[0]]
    assert "blake3" in result.problems[0].message


def test_deleted_audit_event_is_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    ids = event_ids(ctx)
    gone = ids[len(ids) // 2]
    db.execute("DELETE FROM audit_events WHERE id = ?", (gone,))
    result = verify(ctx)
    assert not result.ok
    assert result.problems[0].event_id == gone + 1
    assert any("does not link" in p.message for p in result.problems)


def test_deleted_file_event_is_caught_by_replay_too(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    """Deleting the ingest event of a file leaves a row nobody vouches for."""
    (ev_id,) = db.execute(
        "SELECT id FROM audit_events WHERE action = 'file.ingest' AND subject_id = ?",
        (str(ingested[0]),),
    ).fetchone()
    db.execute("DELETE FROM audit_events WHERE id = ?", (ev_id,))
    result = verify(ctx)
    assert result.problems[0].event_id == ev_id + 1
    assert any(p.file_id == ingested[0] and "no audit event" in p.message for p in result.problems)


def test_two_events_swapped_are_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    a, b = event_ids(ctx)[2:4]
    db.execute("UPDATE audit_events SET id = -1 WHERE id = ?", (a,))
    db.execute("UPDATE audit_events SET id = ? WHERE id = ?", (a, b))
    db.execute("UPDATE audit_events SET id = ? WHERE id = -1", (b,))
    result = verify(ctx)
    assert not result.ok
    assert result.problems[0].event_id == a


def test_forged_event_with_made_up_hash_is_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    last_id, last_hash = db.execute(
        "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1"
    ).fetchone()
    db.execute(
        "INSERT INTO audit_events (id, at, station, actor, action, subject_type, subject_id,"
        " details, prev_hash, hash) VALUES (?, '2026-03-16 03:00:00.000000', 'st-test', 'x',"
        " 'hold.release', 'hold', '1', '{}', ?, ?)",
        (last_id + 1, last_hash, "f" * 64),
    )
    result = verify(ctx)
    assert [p.event_id for p in result.problems] == [last_id + 1]
    assert "does not match its own hash" in result.problems[0].message


def test_forged_event_inserted_in_the_middle_with_a_valid_hash_is_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    """The forger even computes a correct hash: the next event's link still breaks."""
    ids = event_ids(ctx)
    k = ids[3]
    (k_hash,) = db.execute("SELECT hash FROM audit_events WHERE id = ?", (k,)).fetchone()
    db.execute("UPDATE audit_events SET id = id + 100000 WHERE id > ?", (k,))
    db.execute("UPDATE audit_events SET id = id - 99999 WHERE id > 100000")
    forged = AuditEvent(
        id=k + 1,
        at=ctx.clock.now(),
        station="st-test",
        actor="insider",
        action="file.view",
        subject_type="file",
        subject_id=str(ingested[0]),
        details=audit.canonical({"by": "insider", "reason": "none", "approved_by": "boss"}),
        prev_hash=k_hash,
        hash="",
    )
    forged.hash = audit.event_hash(
        prev_hash=forged.prev_hash,
        at=forged.at,
        station=forged.station,
        actor=forged.actor,
        action=forged.action,
        subject_type=forged.subject_type,
        subject_id=forged.subject_id,
        details=forged.details,
    )
    with ctx.ledger.session() as s:
        s.add(forged)
    result = verify(ctx)
    assert not result.ok
    assert result.problems[0].event_id == k + 2


def test_truncated_chain_is_caught_against_the_paper_register(
    ctx: Context,
    ingested: list[int],
    db: sqlite3.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written_down = verify(ctx).head
    db.execute("DELETE FROM audit_events WHERE id = ?", (written_down.last_id,))
    assert verify(ctx).ok  # the chain alone cannot see its newest event gone...
    result = verify(ctx, against=written_down.hash)  # ...the paper register can
    assert not result.ok
    assert written_down.hash in result.problems[0].message

    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    assert main(["audit", "verify", "--against", written_down.hash]) == 65
    assert "no longer in the chain" in capsys.readouterr().err


def test_deleted_file_row_is_caught(
    ctx: Context, ingested: list[int], db: sqlite3.Connection
) -> None:
    db.execute("PRAGMA foreign_keys = OFF")
    db.execute("DELETE FROM files WHERE id = ?", (ingested[-1],))
    result = verify(ctx)
    assert [p.file_id for p in result.problems] == [ingested[-1]]
    assert "no row" in result.problems[0].message


def test_history_of_a_file_lists_its_events(
    ctx: Context,
    ingested: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    fid = ingested[0]
    act_as(monkeypatch, add_account(ctx.ledger, "clerk", Role.CUSTODIAN))
    assert main(["tag", str(fid), "--case", "A-1", "--cause", "theft"]) == 0
    capsys.readouterr()
    assert main(["audit", "history", "--file", str(fid), "--format", "json"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in events] == ["file.ingest", "file.tag"]
    assert events[1]["set"] == {"case_number": "A-1", "case_cause": "theft"}
    assert events[1]["actor"] == "clerk"
    assert verify(ctx).ok
    assert main(["audit", "history", "--file", "99999"]) == 66
