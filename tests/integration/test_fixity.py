"""The fixity sweep on a real store: a flipped byte, a deleted file and a stray file are named."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path, PurePosixPath

import blake3
import pytest
from sqlalchemy import select

from dockd import store
from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import Alert, Recording
from dockd.sweeps.fixity import run_fixity
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.station import make_config

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _setup(tmp_path: Path, clock: FixedClock, card: Recorder, extra: str = "") -> Context:
    cfg = make_config(tmp_path, extra)
    led = open_ledger(cfg.ledger.url)
    alerts = AlertSink(led, cfg.station.id, clock, cfg.alerts)
    register(led, clock, card)
    assert run_ingest(Context(cfg, led, clock, alerts), card.root).ok
    return Context(cfg, led, clock, alerts)


@pytest.fixture
def sctx(ctx: Context, clock: FixedClock, card: Recorder) -> Context:
    """Real footage in a real store; the ledger is the `config` fixture's (SQLite or
    PostgreSQL when parametrized)."""
    register(ctx.ledger, clock, card)
    assert run_ingest(ctx, card.root).ok
    return Context(ctx.config, ctx.ledger, clock, ctx.alerts)


def _rows(ctx: Context) -> list[Recording]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(Recording).order_by(Recording.id)))


def _alerts(ctx: Context) -> list[Alert]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_flipped_deleted_and_stray_files_are_each_named(sctx: Context, clock: FixedClock) -> None:
    root = sctx.config.store.root
    clean = run_fixity(sctx, full=True)
    assert clean.status == "ok"
    assert (clean.checked, clean.ok, clean.findings) == (4, 4, [])
    assert all(r.fixity_status == "ok" and r.last_fixity_at == clock.now() for r in _rows(sctx))

    flipped, deleted, *_ = _rows(sctx)
    target = root / flipped.store_path
    os.chmod(target, 0o640)  # stored files are 0440
    with open(target, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.chmod(target, 0o440)
    os.chmod(root / deleted.store_path, 0o640)
    os.unlink(root / deleted.store_path)
    day_dir = (root / flipped.store_path).parent
    (day_dir / "copied-by-hand.mp4").write_bytes(b"not from any recorder")
    (root / "2026" / "04").mkdir()
    (root / "2026" / "04" / "notes.txt").write_text("stray")

    clock.advance(DAY)
    report = run_fixity(sctx, full=True)
    assert [(f.file_id, f.path) for f in report.of("modified")] == [
        (flipped.id, flipped.store_path)
    ]
    assert [(f.file_id, f.path) for f in report.of("missing")] == [(deleted.id, deleted.store_path)]
    stray = sorted(f.path for f in report.of("unexpected"))
    assert stray == sorted(
        [
            f"{Path(flipped.store_path).parent.as_posix()}/copied-by-hand.mp4",
            "2026/04/notes.txt",
        ]
    )
    mod = report.of("modified")[0]
    assert mod.expected == flipped.blake3
    assert mod.found == blake3.blake3(target.read_bytes()).hexdigest() != flipped.blake3

    status = {r.id: r.fixity_status for r in _rows(sctx)}
    assert status[flipped.id] == "modified" and status[deleted.id] == "missing"
    assert list(status.values()).count("ok") == 2

    alerts = {(a.kind, a.subject): a for a in _alerts(sctx)}
    assert set(alerts) == {
        ("fixity.modified", flipped.store_path),
        ("fixity.missing", deleted.store_path),
        *{("fixity.unexpected", p) for p in stray},
    }
    assert alerts[("fixity.modified", flipped.store_path)].severity == "critical"
    assert flipped.blake3 in alerts[("fixity.modified", flipped.store_path)].message

    with sctx.ledger.session() as s:
        ev = [e for e in audit.history(s, "file", flipped.id) if e.action == "file.fixity"]
    assert [json.loads(e.details)["set"]["fixity_status"] for e in ev] == ["ok", "modified"]

    # The next run names them again but does not alert twice for the same open problem.
    clock.advance(DAY)
    again = run_fixity(sctx, full=True)
    assert len(again.problems) == len(report.problems)
    assert len(_alerts(sctx)) == len(alerts)


def test_a_repaired_file_is_recovered(sctx: Context, clock: FixedClock) -> None:
    root = sctx.config.store.root
    row = _rows(sctx)[0]
    path = root / row.store_path
    original = path.read_bytes()
    os.chmod(path, 0o640)
    path.write_bytes(original[:-1])
    assert run_fixity(sctx, full=True).of("modified")[0].note.startswith("size is")
    path.write_bytes(original)  # restored from the archive copy
    os.chmod(path, 0o440)
    clock.advance(DAY)
    report = run_fixity(sctx, full=True)
    assert [f.file_id for f in report.of("recovered")] == [row.id] and not report.problems
    assert _rows(sctx)[0].fixity_status == "ok"


def test_the_store_is_covered_once_per_cycle_a_slice_per_run(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    ctx = _setup(tmp_path, clock, card, "[fixity]\ncycle_days = 4\nscan_unexpected = false\n")
    seen: list[int] = []
    for _ in range(4):
        clock.advance(DAY)
        report = run_fixity(ctx)
        assert report.checked == 1  # 4 files over 4 days, one run a day
        seen += [r.id for r in _rows(ctx) if r.last_fixity_at == clock.now()]
    assert sorted(seen) == sorted(r.id for r in _rows(ctx))
    # After a week without runs every file is overdue, and all are checked at once.
    clock.advance(7 * DAY)
    assert run_fixity(ctx).checked == 4
    ctx.ledger.close()


def test_dry_run_reports_but_writes_nothing(sctx: Context) -> None:
    row = _rows(sctx)[0]
    path = sctx.config.store.root / row.store_path
    os.chmod(path, 0o640)
    path.unlink()
    report = run_fixity(sctx, dry_run=True, full=True)
    assert report.status == "dry-run"
    assert [f.file_id for f in report.of("missing")] == [row.id]
    assert all(r.fixity_status is None and r.last_fixity_at is None for r in _rows(sctx))
    assert _alerts(sctx) == []


def _publish_without_commit(ctx: Context, tmp_path: Path) -> tuple[PurePosixPath, Path]:
    """What an ingest does up to its ledger commit: copy in, publish (marker first)."""
    root = ctx.config.store.root
    source = tmp_path / "in-flight.mp4"
    source.write_bytes(os.urandom(64 * 1024))
    fd = os.open(source, os.O_RDONLY)
    try:
        incoming = store.copy_into_incoming(root, fd, buffer_size=1 << 16)
    finally:
        os.close(fd)
    rel = store.publish(root, incoming, PurePosixPath("2026/03/15/DV-9/in-flight.mp4"))
    marker = incoming.marker
    assert (root / rel).is_file() and marker is not None and marker.is_file()
    return rel, marker


def test_a_file_whose_ingest_is_in_flight_is_not_unexpected(sctx: Context, tmp_path: Path) -> None:
    rel, _ = _publish_without_commit(sctx, tmp_path)  # this process is alive: in flight
    assert rel in store.in_flight(sctx.config.store.root)
    report = run_fixity(sctx, full=True)
    assert report.of("unexpected") == [] and report.problems == []
    assert _alerts(sctx) == []


def test_a_file_published_by_a_process_that_died_before_its_commit_is_unexpected(
    sctx: Context, tmp_path: Path
) -> None:
    rel, marker = _publish_without_commit(sctx, tmp_path)
    dead = subprocess.Popen(["true"])  # a process that has exited by now
    dead.wait()
    # the same marker, owned by a process that no longer runs (a crash before the commit)
    owner, _, rest = marker.name.partition("-")
    assert owner == str(os.getpid())
    marker.rename(marker.with_name(f"{dead.pid}-{rest}"))
    assert store.in_flight(sctx.config.store.root) == set()
    report = run_fixity(sctx, full=True)
    assert [f.path for f in report.of("unexpected")] == [rel.as_posix()]
    assert [(a.kind, a.subject) for a in _alerts(sctx)] == [("fixity.unexpected", rel.as_posix())]
