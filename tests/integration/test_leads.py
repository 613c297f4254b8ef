"""Each clip's lead kept in its row (``dockd.ledger.leads``), whatever changes the
footage: clips arriving out of order, times corrected, a clip moved to another
device or removed, rows written past the ORM, a ledger migrated, two transactions at
once. Checked against a plain reading of the rule (the latest end among the device's
earlier clips, the first clip to end then), on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, event, insert, select, text, update
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger import db, leads
from dockd.ledger.db import Ledger
from dockd.ledger.models import Recording
from dockd.reports.base import Period
from dockd.reports.catalog import run_report
from tests.helpers.ledgers import BACKENDS
from tests.helpers.station import NOW

R = Recording
T0 = datetime(2026, 3, 14, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
_seq = count(1)


def _clip(
    device: str, start: datetime, end: datetime | None, kind: str = "video"
) -> dict[str, Any]:
    n = next(_seq)
    return {
        "station": "st-test",
        "device_ref": device,
        "kind": kind,
        "recorded_start": start,
        "recorded_end": end,
        "time_source": "container",
        "size_bytes": 1,
        "blake3": f"{n:064x}",
        "source_path": f"DCIM/{n}.MP4",
        "store_path": f"x/{n}.MP4",
        "ingested_at": NOW,
    }


def _footage(rng: random.Random, devices: int = 3, clips: int = 60) -> list[dict[str, Any]]:
    """Clips of a few devices in shuffled order: runs with breaks, equal starts and
    ends, clips without an end, a long clip over later short ones, photos between."""
    out = []
    for d in range(devices):
        at = T0
        for _ in range(clips):
            at += timedelta(minutes=rng.choice([0, 0, 1, 3, 5, 12, 40, 600]))
            length = timedelta(seconds=rng.choice([0, 30, 60, 300, 300, 3600, 7 * 3600]))
            end = None if rng.random() < 0.1 else at + length
            kind = rng.choice(["video", "video", "video", "audio", "photo"])
            out.append(_clip(f"DV-{d}", at, end, kind))
    rng.shuffle(out)
    return out


def _expected(rows: list[Any]) -> dict[int, tuple[datetime | None, int | None]]:
    """The rule read plainly: per device, clips in (start, id) order; each clip's lead
    is the latest end of those before it and the first of them to end then."""
    out: dict[int, tuple[datetime | None, int | None]] = {}
    lines: dict[str, list[Any]] = {}
    for r in rows:
        if r.kind in ("video", "audio"):
            lines.setdefault(r.device_ref, []).append(r)
        else:
            out[r.id] = (None, None)
    for line in lines.values():
        line.sort(key=lambda r: (r.recorded_start, r.id))
        for i, r in enumerate(line):
            before = line[:i]
            if not before:
                out[r.id] = (None, None)
                continue
            latest = max(b.recorded_end or b.recorded_start for b in before)
            first = next(b for b in before if (b.recorded_end or b.recorded_start) == latest)
            out[r.id] = (latest, first.id)
    return out


def _stored(ledger: Ledger) -> tuple[dict[int, tuple[datetime | None, int | None]], list[Any]]:
    with ledger.read() as s:
        rows = s.execute(
            select(R.id, R.device_ref, R.kind, R.recorded_start, R.recorded_end, R.lead_end,
                   R.lead_id)
        ).all()  # fmt: skip
    return {r.id: (r.lead_end, r.lead_id) for r in rows}, list(rows)


def _check(ledger: Ledger) -> int:
    stored, rows = _stored(ledger)
    assert stored == _expected(rows)
    return len(rows)


def _add(s: Session, rows: list[dict[str, Any]]) -> list[Recording]:
    added = [Recording(**r) for r in rows]
    s.add_all(added)
    s.flush()
    return added


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_leads_hold_however_the_clips_arrive(config: Config, ledger: Ledger) -> None:
    """Clips ingested out of order, a few per transaction and several flushes per
    transaction (a late recorder's clips go before clips already in the ledger)."""
    rng = random.Random(16)
    footage = _footage(rng)
    while footage:
        with ledger.session() as s:
            for _ in range(rng.randint(1, 3)):
                k = rng.randint(1, 12)
                part, footage = footage[:k], footage[k:]
                _add(s, part)
    assert _check(ledger) > 100


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_leads_follow_a_corrected_time_a_moved_clip_and_a_removed_one(
    config: Config, ledger: Ledger
) -> None:
    rng = random.Random(1)
    with ledger.session() as s:
        _add(s, _footage(rng, devices=2, clips=40))
    _check(ledger)
    with ledger.read() as s:
        ids = list(s.scalars(select(R.id).where(R.kind.in_(leads.CLIPS)).order_by(R.id)))
    picked = rng.sample(ids, 13)
    with ledger.session() as s:
        for i in picked[:6]:  # times corrected, both ways, one by hours
            row = s.get_one(Recording, i)
            shift = timedelta(minutes=rng.choice([-300, -20, 7, 45, 600]))
            row.recorded_start += shift
            row.recorded_end = row.recorded_end + shift if row.recorded_end else None
    _check(ledger)
    with ledger.session() as s:
        for i in picked[6:9]:  # released from quarantine to another device's line
            s.get_one(Recording, i).device_ref = "DV-0" if i % 2 else "DV-9"
        s.get_one(Recording, picked[9]).recorded_end = T0 + timedelta(days=3)  # a long one
    _check(ledger)
    with ledger.session() as s:  # no longer a clip: no lead, and out of its line
        s.get_one(Recording, picked[12]).kind = "photo"
    _check(ledger)
    with ledger.session() as s:
        s.delete(s.get_one(Recording, picked[10]))
    _check(ledger)
    with ledger.session() as s:
        s.execute(delete(Recording).where(R.id == picked[11]))  # past the ORM: walked below
    with ledger.session() as s:
        leads.relead_all(s.connection())
    _check(ledger)


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_rows_written_past_the_orm_are_set_by_relead_all(config: Config, ledger: Ledger) -> None:
    with ledger.session() as s:
        s.execute(insert(Recording), _footage(random.Random(3)))
    stored, _ = _stored(ledger)
    assert set(stored.values()) == {(None, None)}  # nothing kept them yet
    with ledger.session() as s:
        changed = leads.relead_all(s.connection())
    assert changed > 0
    _check(ledger)
    with ledger.session() as s:
        assert leads.relead_all(s.connection()) == 0  # already right: nothing written


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_ledger_migrated_to_leads_gets_every_clips_lead(config: Config) -> None:
    db.open_ledger(config.ledger.url).close()
    engine = db.make_engine(config.ledger.url)
    cfg = db._alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0019")
        rows = _footage(random.Random(4))
        with engine.begin() as conn:  # names only the columns 0019 has
            conn.execute(insert(Recording), rows)
        assert db.migrate(engine) == ("0019", db.head_revision())
    finally:
        engine.dispose()
    ledger = db.open_ledger(config.ledger.url)
    try:
        assert _check(ledger) == len(rows)
    finally:
        ledger.close()


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_gaps_report_is_what_the_leads_say(config: Config, ledger: Ledger) -> None:
    """Every break over the limit in one local day, before whichever clip arrived last."""
    rng = random.Random(7)
    footage = _footage(rng, devices=3, clips=80)
    for part in range(0, len(footage), 25):
        with ledger.session() as s:
            _add(s, footage[part : part + 25])
    _, rows = _stored(ledger)
    expected = _expected(rows)
    limit = timedelta(minutes=config.reports.gap_minutes)
    tz = config.station.tz
    want = []
    for r in rows:
        lead_end, lead_id = expected[r.id]
        if lead_end is None or r.kind not in leads.CLIPS:
            continue
        same_day = r.recorded_start.astimezone(tz).date() == lead_end.astimezone(tz).date()
        if r.recorded_start - lead_end > limit and same_day:
            want.append((r.device_ref, r.recorded_start, r.id, lead_id))
    want.sort()
    with ledger.read() as s:
        got = run_report("gaps", s, config, Period(), NOW).rows
    assert len(want) > 10
    assert [(g["device"], g["file_after"], g["file_before"]) for g in got] == [
        (d, after, before) for d, _start, after, before in want
    ]


@pytest.mark.parametrize("config", [BACKENDS[1]], indirect=True)
def test_two_transactions_taking_one_recorders_clips_wait_for_each_other(
    config: Config, ledger: Ledger
) -> None:
    """PostgreSQL (SQLite lets one writer at a time): a clip committed by one station
    while another has its own clip of the same recorder in flight. The second waits
    for the first's lock on the line, then walks it with the first's clip in sight."""
    with ledger.session() as s:
        _add(s, [_clip("DV-1", T0, T0 + timedelta(minutes=5))])
    first = ledger._factory()
    first.begin()
    _add(first, [_clip("DV-1", T0 + timedelta(hours=2), T0 + timedelta(hours=3))])
    done = threading.Event()

    def second() -> None:
        with ledger.session() as s:  # an earlier clip: its walk runs over the first's
            _add(s, [_clip("DV-1", T0 + timedelta(hours=1), T0 + timedelta(hours=4))])
        done.set()

    worker = threading.Thread(target=second)
    worker.start()
    try:
        _wait_for_lock_waiter(ledger)
        assert not done.is_set()
        first.commit()
    finally:
        first.close()
        worker.join()
    assert done.is_set()
    _check(ledger)


def _wait_for_lock_waiter(ledger: Ledger) -> None:
    """Until a transaction waits for an advisory lock (the second's walk)."""
    q = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    for _ in range(600):
        with ledger.engine.connect() as conn:
            if conn.execute(q).scalar():
                return
        time.sleep(0.05)
    raise AssertionError("the second transaction never waited for the line's lock")


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_the_first_clip_to_end_then_keeps_the_lead(config: Config, ledger: Ledger) -> None:
    """Two clips started together and ending together: the break after them runs from
    the one first in the line (the lower id); a clip ending exactly at the lead's end
    takes nothing. Inserted last first, so that the ids run against the line's order."""
    at = T0 + timedelta(hours=1)
    with ledger.session() as s:
        after, tie_b, tie_a = _add(
            s,
            [
                _clip("DV-1", at + timedelta(hours=1), None),
                _clip("DV-1", at, at + timedelta(minutes=5)),
                _clip("DV-1", at, at + timedelta(minutes=5)),
            ],
        )
    with ledger.session() as s:  # ends where the lead does: a break before it, none taken
        (same,) = _add(s, [_clip("DV-1", at + timedelta(minutes=5), None, "audio")])
    stored, _ = _stored(ledger)
    first = min(tie_a.id, tie_b.id)
    assert stored[first] == (None, None)  # the first clip of the line
    assert stored[max(tie_a.id, tie_b.id)] == (at + timedelta(minutes=5), first)
    assert stored[same.id] == (at + timedelta(minutes=5), first)
    assert stored[after.id] == (at + timedelta(minutes=5), first)
    _check(ledger)
    with ledger.session() as s:  # the same from the set-based statement
        s.execute(update(Recording).values(lead_end=None, lead_id=None))
        assert leads.relead_all(s.connection()) == 3
    assert _stored(ledger)[0] == stored


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_line_is_walked_on_its_index_and_only_the_walk_takes_it(
    config: Config, ledger: Ledger
) -> None:
    """A clip docked into a long footage line: its lead is looked up and the line
    walked on ``ix_files_device_line`` (a device's clips in order), not by reading the
    device's files; and the usage report, grouping files by device, does not take
    that index (SQLite did, and read the table for every row of the month)."""
    with ledger.session() as s:
        rows = [_clip(f"DV-{n % 5}", T0 + timedelta(minutes=n), None) for n in range(3000)]
        s.execute(insert(Recording), rows)
        leads.relead_all(s.connection())
        s.execute(text("ANALYZE"))
    statements: list[tuple[str, Any]] = []

    def keep(*args: Any) -> None:
        if args[2].lstrip().startswith("SELECT"):
            statements.append((args[2], args[3]))

    event.listen(ledger.engine, "before_cursor_execute", keep)
    try:
        with ledger.session() as s:
            _add(s, [_clip("DV-1", T0 + timedelta(minutes=1000, seconds=30), None)])
        walked = [(q, p) for q, p in statements if "lead_end" in q]
        statements.clear()
        with ledger.read() as s:
            run_report("usage-device", s, config, Period(), NOW)
        grouped = list(statements)
    finally:
        event.remove(ledger.engine, "before_cursor_execute", keep)
    assert len(walked) >= 2  # the clip before it, then the line from it on
    for q, params in walked:
        assert "ix_files_device_line" in " ".join(_plan(ledger, q, params)), q
    for q, params in grouped:
        assert "ix_files_device_line" not in " ".join(_plan(ledger, q, params)), q
    _check(ledger)


def _plan(ledger: Ledger, q: str, params: Any) -> list[str]:
    explain = "EXPLAIN QUERY PLAN " if ledger.dialect == "sqlite" else "EXPLAIN "
    with ledger.engine.connect() as conn:
        return [str(r[-1]) for r in conn.exec_driver_sql(explain + q, params)]
