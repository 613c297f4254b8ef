"""The archive sweep: verified copies of held footage, BagIt manifests, unplugged targets."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import datetime
from pathlib import Path

import bagit
import blake3
import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, ArchiveCopy, Recording
from dockd.policy import placing
from dockd.sweeps.archive import run_archive
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.pgserver import PgServer
from tests.helpers.station import make_config


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _target(tmp_path: Path, *, reserve_mb: int = 0, extra: str = "") -> str:
    return f"""
[archive]
{extra}
[[archive.targets]]
name = "disk2"
path = "{tmp_path / "archive2"}"
reserve_mb = {reserve_mb}
"""


def _setup(tmp_path: Path, clock: FixedClock, card: Recorder, extra: str) -> Context:
    cfg = make_config(tmp_path, extra)
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, card)
    assert run_ingest(Context(cfg, led, clock, alerts), card.root).ok
    return Context(cfg, led, clock, alerts)


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str | None) -> Config:
    """One archive target; the ledger is SQLite, or PostgreSQL when parametrized."""
    return make_config(tmp_path, _target(tmp_path), ledger_url=pg_url)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str | None:
    if getattr(request, "param", "sqlite") != "postgresql":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
def sctx(ctx: Context, clock: FixedClock, card: Recorder, tmp_path: Path) -> Context:
    (tmp_path / "archive2").mkdir()
    register(ctx.ledger, clock, card)
    assert run_ingest(ctx, card.root).ok
    return Context(ctx.config, ctx.ledger, clock, ctx.alerts)


def _rows(ctx: Context) -> list[Recording]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(Recording).order_by(Recording.id)))


def _copies(ctx: Context) -> list[ArchiveCopy]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(ArchiveCopy).order_by(ArchiveCopy.file_id)))


def _hold(
    ctx: Context,
    *,
    file_id: int | None = None,
    case_number: str | None = None,
    device_ref: str | None = None,
    window_from: datetime | None = None,
) -> None:
    with ctx.ledger.session() as s:
        placing.place_hold(
            s,
            station="st-test",
            at=ctx.clock.now(),
            by="inspector",
            reason="evidence",
            file_id=file_id,
            case_number=case_number,
            device_ref=device_ref,
            window_from=window_from,
        )


@pytest.mark.parametrize("pg_url", BACKENDS, indirect=True)
def test_held_files_are_copied_verified_and_listed_in_manifests(sctx: Context) -> None:
    rows = _rows(sctx)
    _hold(sctx, file_id=rows[0].id)
    _hold(sctx, file_id=rows[2].id)
    report = run_archive(sctx)
    assert report.status == "ok"
    [target] = report.targets
    assert target.status == "ok" and target.pending == 0
    assert sorted(i.file_id for i in target.copied) == [rows[0].id, rows[2].id]

    root = sctx.config.archive.targets[0].path
    bag = root / "st-test" / str(target.batch)
    copies = _copies(sctx)
    assert [c.file_id for c in copies] == [rows[0].id, rows[2].id]
    by_id = {r.id: r for r in rows}
    for c in copies:
        row = by_id[c.file_id]
        copy = root / c.path
        assert c.path == f"st-test/{target.batch}/data/{row.store_path}"
        data = copy.read_bytes()
        assert data == (sctx.config.store.root / row.store_path).read_bytes()
        assert c.blake3 == row.blake3 == blake3.blake3(data).hexdigest()
        assert c.sha256 == hashlib.sha256(data).hexdigest()
        assert c.verified_at is not None and c.target == "disk2" and c.batch == target.batch
        assert stat.S_IMODE(copy.stat().st_mode) == 0o440

    manifest = (bag / "manifest-sha256.txt").read_text().splitlines()
    assert sorted(manifest) == sorted(
        f"{c.sha256}  data/{by_id[c.file_id].store_path}" for c in copies
    )
    b3 = (bag / "manifest-blake3.txt").read_text().splitlines()
    assert sorted(b3) == sorted(f"{c.blake3}  data/{by_id[c.file_id].store_path}" for c in copies)
    bagit.Bag(str(bag)).validate()  # a real BagIt tool agrees, fast=False: every hash

    with sctx.ledger.session() as s:
        story = [e.action for e in audit.history(s, "file", rows[0].id)]
    assert story == ["file.ingest", "file.archive"]

    # Nothing new: the next sweep copies nothing and makes no empty batch.
    again = run_archive(sctx)
    assert again.targets[0].copied == [] and again.targets[0].batch is None
    assert len(list((root / "st-test").iterdir())) == 1


def test_an_unplugged_target_raises_an_alert_and_the_next_sweep_catches_up(
    sctx: Context,
) -> None:
    root = sctx.config.archive.targets[0].path
    root.rmdir()  # the second disk is unplugged
    rows = _rows(sctx)
    _hold(sctx, case_number="A-1")
    _hold(sctx, device_ref=rows[0].device_ref, window_from=rows[0].recorded_start)
    report = run_archive(sctx)
    [target] = report.targets
    assert target.status == "missing" and target.pending == 4 and not target.copied
    with sctx.ledger.session() as s:
        alerts = list(s.scalars(select(Alert)))
    assert [(a.kind, a.subject) for a in alerts] == [("archive.target_missing", "disk2")]
    assert "4 file(s) wait" in alerts[0].message and str(root) in alerts[0].message
    assert _copies(sctx) == []

    root.mkdir()  # plugged back in
    report = run_archive(sctx)
    assert report.targets[0].status == "ok"
    assert sorted(c.file_id for c in _copies(sctx)) == [r.id for r in rows]


def test_a_full_target_raises_an_alert(tmp_path: Path, clock: FixedClock, card: Recorder) -> None:
    (tmp_path / "archive2").mkdir()
    ctx = _setup(tmp_path, clock, card, _target(tmp_path, reserve_mb=10**9))
    _hold(ctx, file_id=_rows(ctx)[0].id)
    report = run_archive(ctx)
    assert report.targets[0].status == "full" and report.targets[0].pending == 1
    with ctx.ledger.session() as s:
        assert [a.kind for a in s.scalars(select(Alert))] == ["archive.target_full"]
    assert _copies(ctx) == []
    assert list((tmp_path / "archive2").iterdir()) == []  # the empty batch is not left behind
    ctx.ledger.close()


def test_evidence_is_archived_when_configured_and_a_modified_original_is_not(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    (tmp_path / "archive2").mkdir()
    extra = _target(tmp_path, extra='include_categories = ["evidence"]')
    ctx = _setup(tmp_path, clock, card, extra)
    rows = _rows(ctx)
    with ctx.ledger.session() as s:
        for r in rows[:2]:
            row = s.get_one(Recording, r.id)
            row.case_number = "A-2026-7"
            audit.record_file_change(
                s, row, at=clock.now(), actor="clerk", action="file.tag", changed=("case_number",)
            )
    bad = ctx.config.store.root / rows[1].store_path
    os.chmod(bad, 0o640)
    with open(bad, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    report = run_archive(ctx)
    [target] = report.targets
    assert [i.file_id for i in target.copied] == [rows[0].id]
    [failed] = [i for i in target.items if i.status == "failed"]
    assert failed.file_id == rows[1].id and "has changed" in failed.note
    with ctx.ledger.session() as s:
        assert [a.kind for a in s.scalars(select(Alert))] == ["archive.copy_failed"]
    assert [c.file_id for c in _copies(ctx)] == [rows[0].id]
    ctx.ledger.close()


def test_dry_run_lists_what_would_be_copied(sctx: Context) -> None:
    _hold(sctx, file_id=_rows(sctx)[1].id)
    report = run_archive(sctx, dry_run=True)
    assert [(i.file_id, i.status) for i in report.items()] == [(_rows(sctx)[1].id, "would-copy")]
    assert _copies(sctx) == []
    assert list(sctx.config.archive.targets[0].path.iterdir()) == []
