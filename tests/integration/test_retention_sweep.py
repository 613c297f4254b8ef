"""The retention sweep on a real store and ledger, with an injected clock.

Footage is ingested from a real (PyAV-made) recorder, the clock is moved on, and
the sweep is run: files move to the trash, are purged after the grace period,
held files stay, and the audit trail tells the whole story in order.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import DockdError, UsageError
from dockd.evidence import retime
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, AuditEvent, Case, Recording, SweepRun
from dockd.policy import placing
from dockd.policy.retention import NEVER
from dockd.sweeps import retention
from dockd.sweeps.listings import trash_list, upcoming
from dockd.sweeps.locations import trash_root
from dockd.sweeps.runs import SweepBusy, sweep_run
from dockd.sweeps.trash import restore, restore_covered
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import make_config

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    """One real recorder card, made once: ingest only reads it."""
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _setup(tmp_path: Path, clock: FixedClock, card: Recorder, extra: str = "") -> Context:
    cfg = make_config(tmp_path, extra)
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, card)
    result = run_ingest(Context(cfg, led, clock, alerts), card.root)
    assert result.ok and result.count("stored") == 4
    return Context(cfg, led, clock, alerts, actor="sweeper")


@pytest.fixture
def sctx(tmp_path: Path, clock: FixedClock, card: Recorder) -> Iterator[Context]:
    ctx = _setup(tmp_path, clock, card)
    yield ctx
    ctx.ledger.close()


def _rows(ctx: Context) -> dict[int, Recording]:
    with ctx.ledger.session() as s:
        return {r.id: r for r in s.scalars(select(Recording).order_by(Recording.id))}


def _hold_file(ctx: Context, file_id: int, reason: str = "complaint") -> int:
    with ctx.ledger.session() as s:
        placed = placing.place_hold(
            s,
            station=ctx.config.station.id,
            at=ctx.clock.now(),
            by="inspector",
            reason=reason,
            text_="citizen complaint 2026-17",
            file_id=file_id,
        )
        return placed.hold.id


def test_expired_footage_goes_to_trash_then_is_purged_and_held_file_stays(
    sctx: Context, clock: FixedClock
) -> None:
    rows = _rows(sctx)
    held_id, *free_ids = sorted(rows)
    store_root = sctx.config.store.root
    trash = trash_root(sctx.config)
    hold_id = _hold_file(sctx, held_id)

    # Day 100: nothing is old enough.
    clock.advance(100 * DAY)
    first = retention.run_retention(sctx)
    assert first.status == "ok"
    assert first.refreshed == 4 and not first.trashed

    # Day 200: footage recorded ~201 days ago is past the 180-day routine retention.
    clock.advance(100 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.trashed) == free_ids
    assert [i.file_id for i in report.kept] == [held_id]
    assert "held by #" in report.kept[0].note
    after = _rows(sctx)
    for fid in free_ids:
        row = after[fid]
        assert row.state == "trashed" and row.trashed_at == clock.now()
        assert not (store_root / row.store_path).exists()
        assert row.trash_path == row.store_path  # same relative path in the trash
        assert (trash / row.store_path).is_file()
    assert after[held_id].state == "stored"
    assert (store_root / after[held_id].store_path).is_file()
    trashed_at = clock.now()

    # Day 203: inside the 7-day grace period nothing is purged.
    clock.advance(3 * DAY)
    assert not retention.run_retention(sctx).purged
    assert all((trash / after[f].store_path).is_file() for f in free_ids)

    # Day 208: past the grace period the trash is purged, its emptied folders pruned.
    clock.advance(5 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.purged) == free_ids
    final = _rows(sctx)
    for fid in free_ids:
        assert final[fid].state == "purged" and final[fid].purged_at == clock.now()
        assert not (trash / final[fid].store_path).exists()
    assert list(trash.iterdir()) == []  # only directories the purge emptied, not the root
    assert final[held_id].state == "stored"
    assert (store_root / final[held_id].store_path).is_file()

    # The audit trail tells it in order, each step with hash, path, policy and rule.
    with sctx.ledger.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        assert audit.history(s, "hold", hold_id)[0].action == "hold.add"
        for fid in free_ids:
            story = audit.history(s, "file", fid)
            assert [e.action for e in story] == ["file.ingest", "file.trash", "file.purge"]
            trash_ev, purge_ev = (json.loads(e.details) for e in story[1:])
            for d in (trash_ev, purge_ev):
                assert d["hash"]["blake3"] == final[fid].blake3
                assert d["path"] == final[fid].store_path
                assert d["policy"] == report.policy
                assert d["category"] == "routine"
                assert d["rule"].startswith("routine (default category): 180 days from recording")
            assert trash_ev["set"]["state"] == "trashed"
            assert purge_ev["set"]["state"] == "purged"
            assert trash_ev["purge_after"] == (trashed_at + 7 * DAY).isoformat()
        assert [e.action for e in audit.history(s, "file", held_id)] == ["file.ingest"]
    actions = [e.action for e in events if e.action.startswith(("file.", "hold.", "sweep."))]
    assert actions == [
        *["file.ingest"] * 4,
        "hold.add",
        "sweep.retention",  # day 100
        *["file.trash"] * 3,
        "sweep.retention",  # day 200
        "sweep.retention",  # day 203
        *["file.purge"] * 3,
        "sweep.retention",  # day 208
    ]


def test_dry_run_decides_the_same_and_changes_nothing(sctx: Context, clock: FixedClock) -> None:
    before = _rows(sctx)
    clock.advance(200 * DAY)
    dry = retention.run_retention(sctx, dry_run=True)
    assert dry.status == "dry-run"
    assert sorted(i.file_id for i in dry.trashed) == sorted(before)
    after = _rows(sctx)
    assert all(r.state == "stored" and r.expires_at is None for r in after.values())
    assert all((sctx.config.store.root / r.store_path).is_file() for r in after.values())
    real = retention.run_retention(sctx)
    assert sorted(i.file_id for i in real.trashed) == sorted(i.file_id for i in dry.trashed)
    with sctx.ledger.session() as s:
        statuses = [r.status for r in s.scalars(select(SweepRun).order_by(SweepRun.id))]
    assert statuses == ["dry-run", "ok"]


def test_hold_on_a_trashed_file_brings_it_back(sctx: Context, clock: FixedClock) -> None:
    clock.advance(200 * DAY)
    retention.run_retention(sctx)
    victim = min(_rows(sctx))
    # A complaint arrives about footage already in the trash: a device hold over its day.
    with sctx.ledger.session() as s:
        row = s.get_one(Recording, victim)
        placed = placing.place_hold(
            s,
            station="st-test",
            at=clock.now(),
            by="inspector",
            reason="mass-incident",
            device_ref=row.device_ref,
            window_from=row.recorded_start - DAY,
            window_until=row.recorded_start + DAY,
        )
        assert placed.hold.reason == "emergency"
    restored = restore_covered(sctx, placed.hold.id, by="inspector")
    assert sorted(i.file_id for i in restored) == sorted(_rows(sctx))
    rows = _rows(sctx)
    assert all(r.state == "stored" and r.trash_path is None for r in rows.values())
    assert all((sctx.config.store.root / r.store_path).is_file() for r in rows.values())
    # The next sweeps keep them, even long after the grace period.
    clock.advance(30 * DAY)
    report = retention.run_retention(sctx)
    assert not report.trashed and not report.purged and len(report.kept) == 4


def test_purge_restores_a_file_held_while_in_the_trash(sctx: Context, clock: FixedClock) -> None:
    clock.advance(200 * DAY)
    retention.run_retention(sctx)
    victim = min(_rows(sctx))
    _hold_file(sctx, victim, reason="litigation")  # placed without restoring it at once
    clock.advance(8 * DAY)
    report = retention.run_retention(sctx)
    assert [i.file_id for i in report.restored] == [victim]
    assert victim not in [i.file_id for i in report.purged] and len(report.purged) == 3
    row = _rows(sctx)[victim]
    assert row.state == "stored" and (sctx.config.store.root / row.store_path).is_file()
    with sctx.ledger.session() as s:
        story = [e.action for e in audit.history(s, "file", victim)]
    assert story == ["file.ingest", "file.trash", "file.restore"]


def test_restore_from_trash_needs_a_reason_to_stay(sctx: Context, clock: FixedClock) -> None:
    clock.advance(200 * DAY)
    retention.run_retention(sctx)
    victim = min(_rows(sctx))
    with pytest.raises(UsageError, match="still expired"):
        restore(sctx, victim, by="clerk", reason="needed for review")
    assert _rows(sctx)[victim].state == "trashed"
    item = restore(
        sctx, victim, by="clerk", reason="needed for review", hold_reason="reconsideration"
    )
    assert item.action == "restore"
    row = _rows(sctx)[victim]
    assert row.state == "stored" and (sctx.config.store.root / row.store_path).is_file()
    with pytest.raises(UsageError, match="not in the trash"):
        restore(sctx, victim, by="clerk", reason="again")
    listing = trash_list(sctx)
    assert victim not in [d["file_id"] for d in listing] and len(listing) == 3


def test_evidence_is_kept_until_the_case_closes_plus_its_period(
    sctx: Context, clock: FixedClock
) -> None:
    rows = _rows(sctx)
    tagged = min(rows)
    with sctx.ledger.session() as s:
        s.add(
            Case(
                case_number="A-2026-0042",
                category="evidence",
                imported_at=clock.now(),
                imported_by="case-system",
            )
        )
        row = s.get_one(Recording, tagged)
        row.case_number = "A-2026-0042"
        audit.record_file_change(
            s, row, at=clock.now(), actor="clerk", action="file.tag", changed=("case_number",)
        )
    clock.advance(200 * DAY)
    report = retention.run_retention(sctx)
    assert tagged not in [i.file_id for i in report.trashed] and len(report.trashed) == 3
    assert _rows(sctx)[tagged].expires_at == NEVER
    # The case closes on day 300; evidence is kept 180 days more.
    clock.advance(100 * DAY)
    with sctx.ledger.session() as s:
        s.scalars(select(Case)).one().closed_at = clock.now()
    closed = clock.now()
    report = retention.run_retention(sctx)
    assert not report.trashed
    assert _rows(sctx)[tagged].expires_at == closed + 180 * DAY
    clock.advance(181 * DAY)
    report = retention.run_retention(sctx)
    assert [i.file_id for i in report.trashed] == [tagged]
    assert "after case A-2026-0042 was closed" in report.trashed[0].rule


def test_a_changed_policy_is_applied_to_every_file(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    long = "[retention.categories.routine]\ndays = 400\n"
    ctx = _setup(tmp_path, clock, card, f"[retention]\ncase_category = ''\n{long}")
    retention.run_retention(ctx)
    assert {r.expires_at for r in _rows(ctx).values()} != {None}
    ctx.ledger.close()
    # The admin shortens routine footage to 180 days (the floor).
    short = make_config(
        tmp_path, "[retention]\ncase_category = ''\n[retention.categories.routine]\ndays = 180\n"
    )
    led = open_ledger(short.ledger.url)
    ctx2 = Context(short, led, clock, AlertSink(led, "st-test", clock, short.alerts))
    clock.advance(200 * DAY)
    report = retention.run_retention(ctx2)
    assert report.refreshed == 4 and len(report.trashed) == 4
    led.close()


def test_a_missing_file_is_not_trashed_but_raised(sctx: Context, clock: FixedClock) -> None:
    victim = _rows(sctx)[min(_rows(sctx))]
    gone = sctx.config.store.root / victim.store_path
    os.unlink(gone)
    clock.advance(200 * DAY)
    report = retention.run_retention(sctx)
    assert [i.file_id for i in report.problems] == [victim.id]
    assert len(report.trashed) == 3
    row = _rows(sctx)[victim.id]
    assert row.state == "stored" and row.fixity_status == "missing"
    with sctx.ledger.session() as s:
        kinds = [(a.kind, a.subject) for a in s.scalars(select(Alert))]
    assert ("fixity.missing", victim.store_path) in kinds
    retention.run_retention(sctx)  # the same missing file is not alerted twice
    with sctx.ledger.session() as s:
        assert len(list(s.scalars(select(Alert).where(Alert.kind == "fixity.missing")))) == 1


def test_upcoming_lists_what_goes_within_n_days(sctx: Context, clock: FixedClock) -> None:
    rows = _rows(sctx)
    held = min(rows)
    _hold_file(sctx, held)
    assert upcoming(sctx, 30) == []
    clock.advance(170 * DAY)
    coming = upcoming(sctx, 30)
    assert sorted(d["file_id"] for d in coming) == sorted(rows)
    assert {d["file_id"]: d["action"] for d in coming}[held] == "held"
    clock.advance(20 * DAY)
    retention.run_retention(sctx)
    purges = [d for d in upcoming(sctx, 10) if d["action"] == "purge"]
    assert len(purges) == 3
    # A time corrected while in the trash keeps the file: listed as the sweep will do it.
    late = purges[0]["file_id"]
    with sctx.ledger.session() as s:
        rows_ = retime.select_files(s, retime.Selection(file_ids=(late,)))
        retime.retime(
            s,
            sctx.config,
            rows_,
            offset=100 * DAY,
            to=None,
            reason="clock behind",
            at=clock.now(),
            actor="admin",
        )
    listed = {d["file_id"]: d for d in upcoming(sctx, 10)}
    assert listed[late]["action"] == "restore" and "kept until" in listed[late]["rule"]
    trash = sorted(d["action"] for d in listed.values() if d["file_id"] != held)
    assert trash == ["purge", "purge", "restore"]
    clock.advance(10 * DAY)
    report = retention.run_retention(sctx)
    assert [i.file_id for i in report.restored] == [late]
    assert len(report.purged) == 2


def test_one_run_at_a_time_and_a_crashed_run_does_not_block(
    sctx: Context, clock: FixedClock
) -> None:
    with sweep_run(sctx, "retention"), pytest.raises(SweepBusy, match="already running"):
        retention.run_retention(sctx)
    # A run left 'running' by a process that died is taken over at once.
    dead = {
        "pid": 2**22 + 12345,
        "host": socket.gethostname(),
        "heartbeat": clock.now().isoformat(),
    }
    with sctx.ledger.session() as s:
        s.add(
            SweepRun(
                kind="retention",
                station="st-test",
                started_at=clock.now(),
                status="running",
                summary=json.dumps(dead),
            )
        )
    assert retention.run_retention(sctx).status == "ok"
    # One from another host is taken over once silent for stale_after_minutes.
    other = {"pid": 1, "host": "elsewhere", "heartbeat": clock.now().isoformat()}
    with sctx.ledger.session() as s:
        s.add(
            SweepRun(
                kind="retention",
                station="st-test",
                started_at=clock.now(),
                status="running",
                summary=json.dumps(other),
            )
        )
    with pytest.raises(SweepBusy):
        retention.run_retention(sctx)
    clock.advance(timedelta(minutes=61))
    assert retention.run_retention(sctx).status == "ok"
    with sctx.ledger.session() as s:
        runs = list(s.scalars(select(SweepRun).order_by(SweepRun.id)))
    assert [r.status for r in runs] == ["ok", "failed", "ok", "failed", "ok"]
    assert "abandoned" in (runs[1].summary or "") and "abandoned" in (runs[3].summary or "")


def test_an_unmounted_store_stops_the_sweep_with_an_alert(sctx: Context, clock: FixedClock) -> None:
    root = sctx.config.store.root
    root.rename(root.with_name("store-unmounted"))
    clock.advance(200 * DAY)
    with pytest.raises(DockdError, match="mounted"):
        retention.run_retention(sctx)
    assert all(r.state == "stored" and r.fixity_status is None for r in _rows(sctx).values())
    with sctx.ledger.session() as s:
        assert s.scalars(select(Alert.kind)).all() == ["retention.store_unavailable"]
        assert s.scalars(select(SweepRun.status)).all() == ["failed"]


def test_a_per_case_hard_link_does_not_keep_trashed_footage_alive(
    sctx: Context, clock: FixedClock
) -> None:
    rows = _rows(sctx)
    tagged = rows[min(rows)]
    with sctx.ledger.session() as s:
        row = s.get_one(Recording, tagged.id)
        row.case_number = "A-9"
        audit.record_file_change(
            s, row, at=clock.now(), actor="clerk", action="file.tag", changed=("case_number",)
        )
        s.add(
            Case(
                case_number="A-9",
                closed_at=clock.now(),
                imported_at=clock.now(),
                imported_by="case-system",
            )
        )
    # The per-case view (dockd.evidence.bycase) links the original under <case>/<Y>/<M>/<D>/.
    day = tagged.recorded_start.astimezone(sctx.config.station.tz)
    view = sctx.config.store.root.parent / "by-case" / "A-9" / f"{day:%Y/%m/%d}"
    view.mkdir(parents=True)
    link = view / Path(tagged.store_path).name
    os.link(sctx.config.store.root / tagged.store_path, link)
    clock.advance(400 * DAY)  # case closed 400 days ago: 180 days after close have passed
    report = retention.run_retention(sctx)
    assert tagged.id in [i.file_id for i in report.trashed]
    assert not link.exists() and not (sctx.config.store.root.parent / "by-case" / "A-9").exists()
    trashed = trash_root(sctx.config) / tagged.store_path
    assert trashed.stat().st_nlink == 1  # the purge will really free it


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_sweep_and_its_lock_on_each_ledger(
    ctx: Context, clock: FixedClock, card: Recorder
) -> None:
    """SQLite (a 'running' row under BEGIN IMMEDIATE) and PostgreSQL (an advisory lock)."""
    register(ctx.ledger, clock, card)
    assert run_ingest(ctx, card.root).ok
    sctx = Context(ctx.config, ctx.ledger, clock, ctx.alerts)
    held, *free = sorted(_rows(sctx))
    _hold_file(sctx, held)
    with sweep_run(sctx, "retention"), pytest.raises(SweepBusy):
        retention.run_retention(sctx)
    # A run left 'running' by a process elsewhere that went silent is taken over.
    other = {"pid": 1, "host": "elsewhere", "heartbeat": clock.now().isoformat()}
    with sctx.ledger.session() as s:
        s.add(
            SweepRun(
                kind="retention",
                station="st-test",
                started_at=clock.now(),
                status="running",
                summary=json.dumps(other),
            )
        )
    clock.advance(200 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.trashed) == free
    assert [i.file_id for i in report.kept] == [held]
    clock.advance(8 * DAY)
    assert sorted(i.file_id for i in retention.run_retention(sctx).purged) == free
    rows = _rows(sctx)
    assert [rows[i].state for i in sorted(rows)] == ["stored", "purged", "purged", "purged"]
    with sctx.ledger.session() as s:
        statuses = [r.status for r in s.scalars(select(SweepRun).order_by(SweepRun.id))]
        assert [e.action for e in audit.history(s, "file", free[0])] == [
            "file.ingest",
            "file.trash",
            "file.purge",
        ]
    assert statuses == ["ok", "failed", "ok", "ok"]
