"""The retention sweep and its listing at scale (issue 16): batches, not round trips.

A batch of files is one transaction with one audit event per file, chained exactly
as one-by-one appends would chain them; a batch the ledger refuses leaves every file
where it was; ``dockd sweep upcoming`` lists exactly what the per-file listing did.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.evidence import retime
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, AuditEvent, FileState, Recording
from dockd.policy import adapter as pledger
from dockd.policy import placing
from dockd.sweeps import retention
from dockd.sweeps.listings import Coming, upcoming
from dockd.sweeps.locations import trash_root
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.station import make_config

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


@pytest.fixture
def sctx(tmp_path: Path, clock: FixedClock, card: Recorder) -> Iterator[Context]:
    """A station whose sweep takes three files per batch: four files are two batches."""
    cfg = make_config(tmp_path, "[retention]\nbatch_size = 3\n")
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, card)
    assert run_ingest(Context(cfg, led, clock, alerts), card.root).count("stored") == 4
    ctx = Context(cfg, led, clock, alerts, actor="sweeper")
    yield ctx
    led.close()


def _rows(ctx: Context) -> dict[int, Recording]:
    with ctx.ledger.session() as s:
        return {r.id: r for r in s.scalars(select(Recording).order_by(Recording.id))}


def _events(ctx: Context, action: str) -> list[str]:
    with ctx.ledger.read() as s:
        q = select(AuditEvent.subject_id).where(AuditEvent.action == action)
        return list(s.scalars(q.order_by(AuditEvent.id)))


def _chain(led: Ledger) -> list[tuple[int, str, str]]:
    with led.read() as s:
        q = select(AuditEvent.id, AuditEvent.prev_hash, AuditEvent.hash).order_by(AuditEvent.id)
        return [tuple(r) for r in s.execute(q)]  # type: ignore[misc]


def test_events_appended_together_chain_as_one_by_one(tmp_path: Path) -> None:
    at = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    first = audit.Event(at, "st-1", "admin", "device.add", "device", "DV-1", {"by": "admin"})
    events = [
        audit.Event(at + i * DAY, "st-1", "sweeper", "file.trash", "file", i, {"n": i, "ü": "é"})
        for i in range(1, 6)
    ]
    one = open_ledger(f"sqlite:///{tmp_path}/one.db")
    together = open_ledger(f"sqlite:///{tmp_path}/together.db")
    try:
        for e in (first, *events):
            with one.session() as s:
                audit.record(
                    s,
                    at=e.at,
                    station=e.station,
                    actor=e.actor,
                    action=e.action,
                    subject_type=e.subject_type,
                    subject_id=e.subject_id,
                    details=e.details,
                )
        with together.session() as s:
            audit.record_many(s, [first])
        with together.session() as s:
            audit.record_many(s, events)
        assert len(_chain(one)) == 6
        assert _chain(together) == _chain(one)
        with together.read() as s:
            assert audit.verify_chain(s).ok
    finally:
        one.close()
        together.close()


def test_a_sweep_in_batches_trashes_and_purges_each_file_with_its_own_event(
    sctx: Context, clock: FixedClock
) -> None:
    rows = _rows(sctx)
    clock.advance(200 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.trashed) == sorted(rows)
    assert sorted(map(int, _events(sctx, "file.trash"))) == sorted(rows)
    trash = trash_root(sctx.config)
    for row in _rows(sctx).values():
        assert row.state == FileState.TRASHED and row.trash_path
        assert (trash / row.trash_path).is_file()
        assert not (sctx.config.store.root / row.store_path).exists()
    clock.advance(8 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.purged) == sorted(rows)
    assert sorted(map(int, _events(sctx, "file.purge"))) == sorted(rows)
    assert all(r.state == FileState.PURGED for r in _rows(sctx).values())
    with sctx.ledger.read() as s:
        result = audit.verify(s)
    assert result.ok, result.problems


def test_a_batch_the_ledger_refuses_leaves_every_file_in_the_store(
    sctx: Context, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(sctx)
    clock.advance(200 * DAY)

    def refuse(*args: Any, **kwargs: Any) -> list[AuditEvent]:
        raise RuntimeError("the ledger's disk is full")

    monkeypatch.setattr(audit, "record_many", refuse)
    with pytest.raises(RuntimeError, match="disk is full"):
        retention.run_retention(sctx)
    for row in _rows(sctx).values():
        assert row.state == FileState.STORED
        assert (sctx.config.store.root / row.store_path).is_file()
    assert _events(sctx, "file.trash") == []
    monkeypatch.undo()
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.trashed) == sorted(rows)


def test_a_purge_batch_the_ledger_refuses_puts_back_what_it_restored(
    sctx: Context, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file held after it was trashed is restored by the purge; when its batch's commit
    fails, it goes back to the trash where its row (rolled back) says it is."""
    rows = _rows(sctx)
    clock.advance(200 * DAY)
    retention.run_retention(sctx)
    held = min(rows)
    with sctx.ledger.session() as s:
        placing.place_hold(
            s, station=sctx.config.station.id, at=clock.now(), by="lena", reason="complaint",
            file_id=held,
        )  # fmt: skip
    clock.advance(8 * DAY)
    trash = trash_root(sctx.config)
    before = {i: r.trash_path for i, r in _rows(sctx).items()}
    appended = audit.record_many

    def refuse(session: Any, events: list[audit.Event]) -> list[AuditEvent]:
        if any(e.action == "file.purge" for e in events):  # after the restore went in
            raise RuntimeError("the ledger's disk is full")
        return appended(session, events)

    monkeypatch.setattr(audit, "record_many", refuse)
    with pytest.raises(RuntimeError, match="disk is full"):
        retention.run_retention(sctx)
    row = _rows(sctx)[held]
    was = before[held]
    assert was is not None and row.state == FileState.TRASHED and row.trash_path == was
    assert (trash / was).is_file()  # back where the ledger says it is
    assert not (sctx.config.store.root / row.store_path).exists()

    monkeypatch.undo()
    report = retention.run_retention(sctx)  # the next night: restored, the rest purged
    assert [i.file_id for i in report.restored] == [held]
    after = _rows(sctx)
    assert after[held].state == FileState.STORED
    assert (sctx.config.store.root / after[held].store_path).is_file()
    assert all(r.state == FileState.PURGED for i, r in after.items() if i != held)
    with sctx.ledger.read() as s:
        result = audit.verify(s)
    assert result.ok, result.problems


def _upcoming_one_by_one(ctx: Context, days: int) -> list[dict[str, Any]]:
    """``upcoming`` as it was before issue 16: the policy's facts read per file."""
    now = ctx.clock.now()
    horizon = now + timedelta(days=days)
    grace = timedelta(days=ctx.config.retention.trash_grace_days)
    tz = ctx.config.station.tz
    here = Recording.station == ctx.config.station.id
    out: list[dict[str, Any]] = []

    def add(row: Recording, action: Coming, when: datetime, *rest: str) -> None:
        category, rule, held_by, counted_from = (*rest, "")[:4]
        out.append(
            {
                "file_id": row.id,
                "action": action,
                "when": max(when, now).astimezone(tz).isoformat(),
                "store_path": row.store_path,
                "category": category,
                "counted_from": counted_from,
                "rule": rule,
                "held_by": held_by,
            }
        )

    with ctx.ledger.read() as s:
        for due in (Recording.expires_at <= horizon, Recording.expires_at.is_(None)):
            for row in s.scalars(
                select(Recording).where(due, Recording.state == FileState.STORED, here)
            ):
                facts, _, r = pledger.retention_now(s, row, ctx.config.retention)
                if r.expires_at > horizon:
                    continue
                holds = pledger.holds_touching(s, facts)
                held_by = ",".join(f"#{h.id}" for h in holds)
                action = Coming.HELD if holds else Coming.TRASH
                add(row, action, r.expires_at, r.category, r.rule, held_by, r.counted_from)
        for row in s.scalars(
            select(Recording).where(
                Recording.trashed_at <= horizon - grace, Recording.state == FileState.TRASHED, here
            )
        ):
            assert row.trashed_at is not None
            since = row.trashed_at.astimezone(tz).isoformat()
            when = max(row.trashed_at + grace, now)
            v = pledger.verdict_now(s, row, ctx.config.retention, when)
            held = ",".join(f"#{h}" for h in v.held_by)
            r = v.retention
            if v.delete:
                add(
                    row,
                    Coming.PURGE,
                    when,
                    r.category,
                    f"in the trash since {since}",
                    "",
                    r.counted_from,
                )
            else:
                add(row, Coming.RESTORE, when, r.category, v.why, held, r.counted_from)
    out.sort(key=lambda d: (d["when"], d["file_id"]))
    return out


def _same_listing(ctx: Context) -> None:
    for days in (0, 10, 30, 400):
        assert upcoming(ctx, days) == _upcoming_one_by_one(ctx, days)


def test_upcoming_lists_exactly_what_the_per_file_listing_listed(
    sctx: Context, clock: FixedClock
) -> None:
    ids = sorted(_rows(sctx))
    with sctx.ledger.session() as s:
        placing.place_hold(
            s,
            station=sctx.config.station.id,
            at=clock.now(),
            by="inspector",
            reason="complaint",
            text_="citizen complaint 2026-17",
            file_id=ids[0],
        )
        tagged = s.get(Recording, ids[1])
        assert tagged is not None
        tagged.case_number = "A-2026-9"  # an open case: kept until it closes
        unknown = s.get(Recording, ids[2])
        assert unknown is not None
        unknown.expires_at = None  # not worked out yet: the listing works it out
    _same_listing(sctx)
    clock.advance(170 * DAY)
    coming = upcoming(sctx, 30)
    assert {d["action"] for d in coming} == {"held", "trash"}
    _same_listing(sctx)
    clock.advance(20 * DAY)
    retention.run_retention(sctx)
    late = next(d["file_id"] for d in upcoming(sctx, 10) if d["action"] == "purge")
    with sctx.ledger.session() as s:
        chosen = retime.select_files(s, retime.Selection(file_ids=(late,)))
        retime.retime(
            s,
            sctx.config,
            chosen,
            offset=100 * DAY,
            to=None,
            reason="clock behind",
            at=clock.now(),
            actor="admin",
        )
    assert {d["action"] for d in upcoming(sctx, 10)} >= {"purge", "restore"}
    _same_listing(sctx)


def test_files_a_dead_sweep_moved_but_never_committed_are_trashed_not_missing(
    sctx: Context, clock: FixedClock
) -> None:
    """The process died after its batch's moves, before its commit: the rows still say
    stored, the files are in the trash. The next sweep finds them there (same size, same
    BLAKE3), records them trashed, and raises no missing-file alert."""
    rows = _rows(sctx)
    trash = trash_root(sctx.config)
    moved = sorted(rows)[:2]
    for file_id in moved:
        src = sctx.config.store.root / rows[file_id].store_path
        dst = trash / rows[file_id].store_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.rename(src, dst)
    clock.advance(200 * DAY)
    report = retention.run_retention(sctx)
    assert sorted(i.file_id for i in report.trashed) == sorted(rows)
    assert report.problems == []
    after = _rows(sctx)
    for file_id in moved:
        assert after[file_id].state == FileState.TRASHED
        assert after[file_id].trash_path == rows[file_id].store_path
        assert after[file_id].fixity_status != "missing"
    with sctx.ledger.read() as s:
        assert s.scalars(select(Alert).where(Alert.kind == "fixity.missing")).all() == []
        assert audit.verify(s).ok
