"""``dockd sweep upcoming`` reads the files as plain rows (issue 16): on SQLite and on
PostgreSQL it lists what the per-file listing (each file loaded, its facts, cases and
holds read one by one) lists: a held file, files to trash, trash to purge and a
trashed file a hold will bring back. A page of it (the web's) decides only its own
files and is exactly its part of the whole listing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.db import Ledger
from dockd.ledger.models import FileState, Recording
from dockd.policy import adapter as pledger
from dockd.policy import placing
from dockd.sweeps import retention
from dockd.sweeps.listings import COLUMNS, upcoming, upcoming_page
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import NOW
from tests.integration.test_retention_batches import _same_listing

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _hold(ctx: Context, file_id: int) -> int:
    with ctx.ledger.session() as s:
        placed = placing.place_hold(
            s,
            station=ctx.config.station.id,
            at=ctx.clock.now(),
            by="inspector",
            reason="complaint",
            text_="citizen complaint 2026-17",
            file_id=file_id,
        )
        return placed.hold.id


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_upcoming_on_each_ledger_lists_what_the_per_file_listing_lists(
    ctx: Context, clock: FixedClock, card: Recorder
) -> None:
    register(ctx.ledger, clock, card)
    result = run_ingest(ctx, card.root)
    assert result.ok and result.count("stored") == 4
    sctx = Context(ctx.config, ctx.ledger, clock, ctx.alerts, actor="sweeper")
    assert upcoming(sctx, 30) == []
    clock.advance(170 * DAY)
    coming = upcoming(sctx, 30)
    held, *free = sorted(d["file_id"] for d in coming)
    hold = _hold(sctx, held)
    coming = upcoming(sctx, 30)
    assert sorted((d["file_id"], d["action"], d["held_by"]) for d in coming) == [
        (held, "held", f"#{hold}"),
        *((f, "trash", "") for f in free),
    ]
    # docked days after they were recorded: the floor from their ingest decides
    assert {(d["category"], d["counted_from"]) for d in coming} == {("routine", "ingested")}
    assert all(d["when"].endswith("+08:00") for d in coming)
    _same_listing(sctx)
    clock.advance(20 * DAY)
    retention.run_retention(sctx)
    purges = [d for d in upcoming(sctx, 10) if d["action"] == "purge"]
    assert sorted(d["file_id"] for d in purges) == free
    assert all(d["rule"].startswith("in the trash since ") for d in purges)
    _hold(sctx, free[0])  # held in the trash: the sweep will put it back
    assert {d["file_id"]: d["action"] for d in upcoming(sctx, 10)}[free[0]] == "restore"
    _same_listing(sctx)


HOUR = timedelta(hours=1)


def _recording(s: Session, n: int, start: datetime, **kw: Any) -> Recording:
    row = Recording(
        station=kw.pop("station", "st-test"),
        device_ref=kw.pop("device_ref", "DV-1"),
        kind="video",
        recorded_start=start,
        recorded_end=start + HOUR,
        time_source="container",
        size_bytes=1,
        blake3=f"{n:064x}",
        source_path=f"DCIM/{n}.MP4",
        store_path=f"2025/{n}.MP4",
        ingested_at=start + 2 * HOUR,
        **kw,
    )
    s.add(row)
    s.flush()
    return row


def _coming_station(config: Config, ledger: Ledger) -> tuple[Context, int]:
    """Files whose deletions fall before, across and after a month: their expiries
    worked out by the sweep's function, some not yet (NULL), some trashed (overdue and
    not), some held by a hold on their device, some of another station, a few
    recorded at the same second; and one file whose kept expiry is stale (it says 2
    days, its facts say months). Returns the context and the stale file's id."""
    clock = FixedClock(NOW)
    grace = timedelta(days=config.retention.trash_grace_days)
    with ledger.session() as s:
        for k in range(60):
            start = NOW - 183 * DAY + (k - k % 5) * 15 * HOUR  # five at a time: ties
            row = _recording(
                s,
                k,
                start,
                device_ref="DV-2" if k % 6 == 0 else "DV-1",
                station="st-other" if k % 11 == 0 else "st-test",
            )
            if k % 7 != 3:
                pledger.refresh_expiry(s, row, config.retention)
            if k % 8 == 1:
                row.state = FileState.TRASHED
                row.trashed_at = NOW - grace + (k % 3 - 1) * 2 * DAY
                row.trash_path = row.store_path
        stale = _recording(s, 99, NOW - 10 * DAY)
        stale.expires_at = NOW + 2 * DAY
        placing.place_hold(
            s,
            station="st-test",
            at=NOW,
            by="inspector",
            reason="complaint",
            device_ref="DV-2",
            window_from=NOW - 400 * DAY,
        )
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    return Context(config, ledger, clock, alerts, actor="auditor"), stale.id


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_each_page_of_upcoming_is_its_part_of_the_listing_and_decides_only_its_files(
    config: Config, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, stale = _coming_station(config, ledger)
    whole = upcoming(ctx, 30)
    assert {d["action"] for d in whole} >= {"trash", "held", "purge"}
    assert all(tuple(d) == COLUMNS for d in whole)
    assert stale not in {d["file_id"] for d in whole}
    size = 7
    assert len(whole) > 4 * size
    decided: list[int] = []
    facts_of = pledger.facts_of

    def counting(s: Session, rows: Any) -> Any:
        decided.extend(r.id for r in rows)
        return facts_of(s, rows)

    monkeypatch.setattr(pledger, "facts_of", counting)
    with ledger.read() as s:
        fresh = set(s.scalars(select(Recording.id).where(Recording.expires_at.is_(None))))
    pages = []
    number = 1
    while True:
        decided.clear()
        page = upcoming_page(ctx, 30, number=number, size=size)
        assert page.number == number
        # the stale file is counted (its kept expiry is in the month), never listed
        assert page.total == len(whole) + 1
        shown = {d["file_id"] for d in page.rows}
        assert set(decided) - fresh <= shown | {stale}, "only the page's files decided"
        pages.append(page.rows)
        if number * size >= page.total:
            break
        number += 1
    assert [d for rows in pages for d in rows] == whole
    assert sum(len(rows) == size - 1 for rows in pages) == 1  # the stale file's page
    past = upcoming_page(ctx, 30, number=number + 3, size=size)
    assert (past.number, past.rows) == (number, pages[-1])
    later = NOW + 12 * DAY
    from_later = [d for d in whole if datetime.fromisoformat(d["when"]) >= later]
    assert 0 < len(from_later) < len(whole)
    first = upcoming_page(ctx, 30, number=1, size=100, since=later)
    assert (first.rows, first.total) == (from_later, len(from_later))
