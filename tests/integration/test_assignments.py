"""Assignments with a life: ended, closed by the next one, entered late; devices retired
or lost; footage re-attributed and badge mismatches flagged, alerted and reported."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.evidence import retime
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.models import Alert, Assignment, AuditEvent, Device, Recording
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as_new
from tests.helpers.ledgers import register
from tests.helpers.station import write_config

OTHER = "777001"  # a second officer; the recorder's file names carry 012345
THIRD = "777002"

Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def rec(tmp_path: Path) -> Recorder:
    return make_recorder(tmp_path / "rec", clips=3, extras=False)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``dockd ARGS...`` on the test station, run by a device manager who also keeps the
    footage (registry and tags): (exit code, stdout + stderr)."""
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    act_as_new(monkeypatch, "desk", Role.DEVICE_MANAGER, Role.CUSTODIAN)

    def run(*args: str) -> tuple[int, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out + err

    return run


def files(ctx: Context) -> dict[str, tuple[str | None, bool]]:
    """Each file (by name on the recorder): (officer badge, badge-mismatch flag)."""
    with ctx.ledger.read() as s:
        rows = s.scalars(select(Recording).order_by(Recording.recorded_start))
        return {
            Path(r.source_path).name: (r.officer.badge if r.officer else None, r.badge_mismatch)
            for r in rows
        }


def officer_events(ctx: Context) -> list[dict[str, object]]:
    with ctx.ledger.read() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "file.officer").order_by(AuditEvent.id)
        )
        return [{"file": int(e.subject_id), **json.loads(e.details)} for e in events]


def verified(ctx: Context, cli: Cli) -> None:
    with ctx.ledger.read() as s:
        result = audit.verify(s)
    assert result.ok, result.problems
    code, out = cli("audit", "verify")
    assert code == 0 and "audit trail OK" in out


def mismatch_report(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    """``dockd report badge-mismatch`` over March, as JSON (stdout only: logs go beside)."""
    code = main(
        ["report", "badge-mismatch", "--from", "2026-03-01", "--to", "2026-03-31", "-f", "json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    rows: list[dict[str, object]] = json.loads(out)
    return rows


def start(rec: Recorder, i: int) -> datetime:
    """When the i-th recording on the card starts."""
    at = rec.recordings[i].recorded_at
    assert at is not None
    return at


def local(rec: Recorder, i: int) -> str:
    return start(rec, i).isoformat()


def name(rec: Recorder, i: int) -> str:
    return rec.recordings[i].relpath.rsplit("/", 1)[1]


def test_late_assignment_reattributes_footage_and_ending_it_gives_it_back(
    ctx: Context, clock: FixedClock, rec: Recorder, cli: Cli
) -> None:
    register(ctx.ledger, clock, rec, assign=False)
    assert run_ingest(ctx, rec.root).ok
    before = files(ctx)
    assert {b for b, _ in before.values()} == {rec.badge}  # by the badge in the names
    assert cli("officers", "add", OTHER, "--name", "Li Si")[0] == 0

    # Entered after the fact: the device was worn by OTHER since 1 March.
    code, out = cli("assign", rec.device_number, OTHER, "--from", "2026-03-01")
    assert code == 0, out
    assert f"{len(before)} file(s) re-attributed" in out
    assert set(files(ctx).values()) == {(OTHER, True)}  # names say 012345: flagged
    events = officer_events(ctx)
    assert len(events) == len(before)
    assert {(e["old"], e["new"]) for e in events} == {(rec.badge, OTHER)}
    verified(ctx, cli)

    # Ended when the second clip started: from then on the names' badge again.
    code, out = cli("assign", "end", rec.device_number, "--at", local(rec, 1))
    assert code == 0, out
    after = files(ctx)
    early = {name(rec, i) for i in range(len(rec.recordings)) if start(rec, i) < start(rec, 1)}
    assert early and all(after[n] == (OTHER, True) for n in early)  # the first clip, photo, note
    later = set(after) - early
    assert later and all(after[n] == (rec.badge, False) for n in later)
    assert f"{len(later)} file(s) re-attributed" in out
    with ctx.ledger.read() as s:
        ended = s.scalars(select(AuditEvent).where(AuditEvent.action == "assign.end")).one()
        a = s.scalars(select(Assignment)).one()
    details = json.loads(ended.details)
    assert details["old_until"] is None
    assert a.valid_until == start(rec, 1)
    assert details["new_until"] == a.valid_until.isoformat()
    back = officer_events(ctx)[len(events) :]
    assert {(e["old"], e["new"]) for e in back} == {(OTHER, rec.badge)}
    verified(ctx, cli)

    # No open assignment left to end.
    code, out = cli("assign", "end", rec.device_number)
    assert code != 0 and "no open assignment" in out


def test_reassignment_refused_until_the_previous_is_closed(
    ctx: Context, clock: FixedClock, rec: Recorder, cli: Cli
) -> None:
    register(ctx.ledger, clock, rec)  # 012345 holds it since 1 January
    assert run_ingest(ctx, rec.root).ok
    assert cli("officers", "add", OTHER, "--name", "Li Si")[0] == 0
    handover = local(rec, 2)

    code, out = cli("assign", rec.device_number, OTHER, "--from", handover)
    assert code != 0 and "end that assignment first" in out

    code, out = cli("assign", rec.device_number, OTHER, "--from", handover, "--close-previous")
    assert code == 0, out
    assert f"ended the assignment of device {rec.device_number} to badge {rec.badge}" in out
    with ctx.ledger.read() as s:
        spans = [
            (a.officer.badge, a.valid_from, a.valid_until)
            for a in s.scalars(select(Assignment).order_by(Assignment.valid_from))
        ]
    assert spans == [
        (rec.badge, datetime(2026, 1, 1, tzinfo=UTC), start(rec, 2)),
        (OTHER, start(rec, 2), None),
    ]
    moved = [n for n, (badge, _) in files(ctx).items() if badge == OTHER]
    assert moved == [name(rec, 2)]
    assert "1 file(s) re-attributed" in out
    # the third clip's name still says 012345: it is now a mismatch
    assert files(ctx)[moved[0]] == (OTHER, True)
    verified(ctx, cli)


def test_an_officer_set_by_hand_stays_when_the_assignments_change(
    ctx: Context, clock: FixedClock, rec: Recorder, cli: Cli, tmp_path: Path
) -> None:
    register(ctx.ledger, clock, rec)  # 012345 holds it since 1 January
    assert run_ingest(ctx, rec.root).ok
    assert cli("officers", "add", OTHER, "--name", "Li Si")[0] == 0
    assert cli("officers", "add", THIRD, "--name", "Wang Wu")[0] == 0
    with ctx.ledger.read() as s:
        ids = {Path(r.source_path).name: r.id for r in s.scalars(select(Recording))}
    lent = ids[name(rec, 0)]
    code, out = cli("tag", str(lent), "--officer", OTHER, "--reason", "lent to Li Si, shift log")
    assert code == 0, out
    # Confirming the officer a file already has pins it too, with its own event.
    kept = ids[name(rec, 1)]
    code, out = cli("tag", str(kept), "--officer", rec.badge, "--reason", "seen on the video")
    assert code == 0 and f"officer {rec.badge} kept, now attributed by hand" in out

    # The register is corrected: THIRD wore the recorder all March. Every file follows
    # the assignment but the one a person attributed, with its reason, by hand.
    code, out = cli("assign", rec.device_number, THIRD, "--from", "2026-03-01", "--close-previous")
    assert code == 0, out
    after = files(ctx)
    assert after[name(rec, 0)] == (OTHER, True)
    assert after[name(rec, 1)] == (rec.badge, False)
    assert {b for n, (b, _) in after.items() if n not in (name(rec, 0), name(rec, 1))} == {THIRD}
    assert f"{len(after) - 2} file(s) re-attributed" in out
    # A time correction re-attributes by the assignments too, but not this file.
    with ctx.ledger.session() as s:
        rows = retime.select_files(s, retime.Selection(file_ids=(lent,)))
        retime.retime(
            s,
            ctx.config,
            rows,
            offset=timedelta(hours=-1),
            to=None,
            reason="r",
            at=clock.now(),
            actor="admin",
        )
    assert files(ctx)[name(rec, 0)] == (OTHER, True)
    hand = [e for e in officer_events(ctx) if e["file"] in (lent, kept)]
    assert [(e["file"], e["new"], e["by_hand"]) for e in hand] == [
        (lent, OTHER, True),
        (kept, rec.badge, True),
    ]
    # Auditors see it in SQL.
    con = sqlite3.connect(f"file:{tmp_path / 'ledger.sqlite3'}?mode=ro", uri=True)
    with contextlib.closing(con):
        by_hand = con.execute("SELECT file_id FROM v_files WHERE officer_by_hand").fetchall()
    assert by_hand == [(lent,), (kept,)]
    verified(ctx, cli)
    # The flag is vouched for: unpinned behind dockd's back, verify names it.
    con = sqlite3.connect(tmp_path / "ledger.sqlite3")
    with contextlib.closing(con), con:
        con.execute("UPDATE files SET officer_by_hand = 0 WHERE id = ?", (lent,))
    code, out = cli("audit", "verify")
    assert code != 0 and f"file {lent}: officer_by_hand" in out


def test_badge_mismatch_flagged_alerted_reported_and_cleared_by_tag_officer(
    ctx: Context, clock: FixedClock, rec: Recorder, cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    register(ctx.ledger, clock, rec, assign=False)
    assert cli("officers", "add", OTHER, "--name", "Li Si")[0] == 0
    assert cli("assign", rec.device_number, OTHER, "--from", "2026-01-01")[0] == 0
    result = run_ingest(ctx, rec.root)
    assert result.ok
    named = {n for n, (b, m) in files(ctx).items() if m}
    assert len(named) == len(rec.recordings)  # every name carries 012345
    assert all(b == OTHER for b, _ in files(ctx).values())

    with ctx.ledger.read() as s:
        [alert] = s.scalars(select(Alert).where(Alert.kind == "officer.badge_mismatch"))
    assert alert.severity == "warning" and alert.occurrences == len(rec.recordings)
    assert rec.device_number in alert.message and OTHER in alert.message
    assert rec.badge in alert.message
    assert json.loads(alert.details or "{}")["session_id"] == result.session_id

    listed = mismatch_report(capsys)
    assert {(r["assigned"], r["badge_in_name"]) for r in listed} == {(OTHER, rec.badge)}
    assert len(listed) == len(rec.recordings)

    file_id = listed[0]["id"]
    code, out = cli("tag", str(file_id), "--officer", rec.badge)
    assert code != 0 and "--reason" in out
    # Attributing a file and tagging it are two commands: nothing is silently dropped.
    code, out = cli("tag", str(file_id), "--officer", rec.badge, "--case", "A-1", "--reason", "r")
    assert code == 64 and "--case cannot go with it" in out
    code, out = cli("tag", str(file_id), "--officer", rec.badge, "--reason", "lent, per log")
    assert code == 0 and f"officer {OTHER} -> {rec.badge}" in out
    [event] = officer_events(ctx)
    assert (event["file"], event["old"], event["new"]) == (file_id, OTHER, rec.badge)
    assert event["reason"] == "lent, per log"
    assert file_id not in {r["id"] for r in mismatch_report(capsys)}
    verified(ctx, cli)


def test_retired_and_lost_devices_end_their_assignment_and_a_lost_one_docking_alerts(
    ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path, cli: Cli
) -> None:
    register(ctx.ledger, clock, rec)
    assert cli("devices", "add", "DV-0099")[0] == 0
    lost_at = (clock.now() - timedelta(hours=1)).isoformat()

    code, out = cli("devices", "lost", rec.device_number, "--at", lost_at, "--reason", "stolen")
    assert code == 0 and "marked lost" in out and f"badge {rec.badge}" in out
    code, out = cli("devices", "retire", "DV-0099", "--reason", "battery swollen")
    assert code == 0 and "marked retired" in out
    code, out = cli("devices", "lost", "DV-0099")
    assert code != 0 and "--reason" in out
    with ctx.ledger.read() as s:
        devs = {d.number: d for d in s.scalars(select(Device))}
        a = s.scalars(select(Assignment)).one()
        lost_ev = s.scalars(select(AuditEvent).where(AuditEvent.action == "device.lost")).one()
    assert devs[rec.device_number].retired_reason == "lost"
    assert devs["DV-0099"].retired_reason == "retired" and devs["DV-0099"].retired_at
    assert a.valid_until == datetime.fromisoformat(lost_at)
    lost = json.loads(lost_ev.details)
    assert lost["old"] == {"retired_at": None, "retired_reason": None}
    assert lost["new"]["retired_reason"] == "lost" and lost["reason"] == "stolen"
    # An assignment that starts after the retirement would stay open: refused, named.
    assert cli("devices", "add", "DV-0098")[0] == 0
    assert cli("assign", "DV-0098", rec.badge, "--from", clock.now().isoformat())[0] == 0
    early = (clock.now() - timedelta(days=1)).isoformat()
    code, out = cli("devices", "retire", "DV-0098", "--at", early, "--reason", "old")
    assert code == 64 and f"assigned to badge {rec.badge}" in out and "later --at" in out
    verified(ctx, cli)

    # The lost recorder turns up in a dock: everything is taken, loudly.
    result = run_ingest(ctx, rec.root)
    assert result.outcome == "complete" and len(files(ctx)) == len(rec.recordings)
    with ctx.ledger.read() as s:
        [alert] = s.scalars(select(Alert).where(Alert.kind == "device.lost"))
    assert alert.severity == "critical" and alert.subject == rec.device_number
    assert rec.device_number in alert.message and "lost" in alert.message
    verified(ctx, cli)


def test_assign_help_lists_both_forms(cli: Cli) -> None:
    code, out = cli("assign", "--help")
    assert code == 0 and " set " in out and " end " in out
