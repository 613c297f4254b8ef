"""``dockd sweep upcoming`` reads the files as plain rows (issue 16): on SQLite and on
PostgreSQL it lists what the per-file listing (each file loaded, its facts, cases and
holds read one by one) lists: a held file, files to trash, trash to purge and a
trashed file a hold will bring back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.policy import placing
from dockd.sweeps import retention
from dockd.sweeps.listings import upcoming
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
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
