"""Two copies that guard each other (issue 15): the fixity sweep checks the archive copies
too, restores a damaged store file from a verified copy and remakes a damaged copy from
the store, each repair in the audit trail with both hashes; when both are bad, a critical
alert names the file and nothing is overwritten.

Real footage (fixtures.make_recorder), a real ingest, a real archive run to a directory
target (and to an optical one, with a real disc image), a real SQLite ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import bagit
import blake3
import pytest
from sqlalchemy import select

from dockd.alerts import AlertSink
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.evidence import bycase, cases, disc
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Alert, ArchiveCopy, AuditEvent, Recording
from dockd.policy import placing
from dockd.store import INCOMING
from dockd.sweeps.archive import run_archive
from dockd.sweeps.fixity import run_fixity
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as_new
from tests.helpers.ledgers import BACKENDS, register
from tests.helpers.pgserver import PgServer
from tests.helpers.skips import need
from tests.helpers.station import make_config, write_config

DAY = timedelta(days=1)
CASE = "C-2026-7"


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("card") / "rec", clips=2, extras=False)


def _target(tmp_path: Path, kind: str = "directory", extra: str = "") -> str:
    return f"""
[[archive.targets]]
name = "disk2"
path = "{tmp_path / "archive2"}"
kind = "{kind}"
reserve_mb = 0
{extra}
"""


_OPENED: list[Ledger] = []


@pytest.fixture(autouse=True)
def _close_ledgers() -> Iterator[None]:
    """Each test's ledger closed after it (PostgreSQL connections too)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> str | None:
    """None (SQLite), or a fresh PostgreSQL database when parametrized with BACKENDS."""
    if getattr(request, "param", "sqlite") != "postgresql":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


def _station(
    tmp_path: Path,
    clock: FixedClock,
    card: Recorder,
    *,
    kind: str = "directory",
    extra: str = "",
    ledger_url: str | None = None,
) -> Context:
    """Footage ingested, tagged with a case (so the per-case tree links it), held and
    archived to one target."""
    (tmp_path / "archive2").mkdir()
    cfg = make_config(tmp_path, _target(tmp_path, kind, extra), ledger_url=ledger_url)
    led = open_ledger(cfg.ledger.url)
    _OPENED.append(led)
    ctx = Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    register(led, clock, card)
    assert run_ingest(ctx, card.root).ok
    with led.session() as s:
        rows = cases.select_files(s, file_ids=[r.id for r in _rows(ctx)])
        cases.tag_files(s, rows, cases.Tag(case_number=CASE), at=clock.now(), actor="t")
        for row in rows:
            placing.place_hold(
                s, station="st-test", at=clock.now(), by="inspector", reason="evidence",
                file_id=row.id,
            )  # fmt: skip
        assert not bycase.rebuild(s, cfg).errors
    archived = run_archive(ctx)
    assert archived.status == "ok" and len(archived.targets[0].copied) == len(rows)
    clock.advance(DAY)
    return ctx


def _rows(ctx: Context) -> list[Recording]:
    with ctx.ledger.session() as s:
        return list(s.scalars(select(Recording).order_by(Recording.id)))


def _copy(ctx: Context, file_id: int) -> ArchiveCopy:
    with ctx.ledger.session() as s:
        return s.scalars(select(ArchiveCopy).where(ArchiveCopy.file_id == file_id)).one()


def _alerts(ctx: Context) -> dict[tuple[str, str], Alert]:
    with ctx.ledger.session() as s:
        return {(a.kind, a.subject): a for a in s.scalars(select(Alert))}


def _events(ctx: Context, file_id: int, action: str) -> list[dict[str, object]]:
    with ctx.ledger.session() as s:
        history = audit.history(s, "file", file_id)
        return [json.loads(e.details) for e in history if e.action == action]


def _flip(path: Path, at: int = 1000) -> str:
    """Flip one byte on disk (the mode kept); the damaged file's BLAKE3."""
    mode = stat.S_IMODE(path.stat().st_mode)
    os.chmod(path, 0o640)
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, mode)
    return blake3.blake3(path.read_bytes()).hexdigest()


def _store(ctx: Context, row: Recording) -> Path:
    return ctx.config.store.root / row.store_path


def _link(ctx: Context, row: Recording) -> Path:
    [link] = [p for p in bycase.by_case_root(ctx.config).rglob(Path(row.store_path).name)]
    return link


def test_a_flipped_store_file_is_restored_from_the_archive_copy(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    ctx = _station(tmp_path, clock, card)
    row = _rows(ctx)[0]
    path, copy = _store(ctx, row), tmp_path / "archive2" / _copy(ctx, row.id).path
    damaged = _flip(path)
    assert _link(ctx, row).read_bytes() == path.read_bytes()  # the link shares the inode

    report = run_fixity(ctx, full=True)

    assert report.status == "ok" and report.problems == []
    [fixed] = report.of("repaired")
    assert (fixed.file_id, fixed.expected, fixed.found) == (row.id, row.blake3, damaged)
    assert f"restored from disk2: {copy}" in fixed.note
    assert path.read_bytes() == copy.read_bytes()
    assert blake3.blake3(path.read_bytes()).hexdigest() == row.blake3
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert list((ctx.config.store.root / INCOMING).glob("*.part")) == []
    # The per-case view now shows the repaired file (a new inode, re-linked).
    link = _link(ctx, row)
    assert link.read_bytes() == path.read_bytes() and link.stat().st_ino == path.stat().st_ino
    assert _rows(ctx)[0].fixity_status == "ok"

    [event] = _events(ctx, row.id, "file.repaired")
    assert (event["was"], event["found"], event["restored"]) == ("modified", damaged, row.blake3)
    assert event["source"] == {
        "target": "disk2",
        "path": _copy(ctx, row.id).path,
        "where": str(copy),
    }
    [checked] = _events(ctx, row.id, "file.fixity")
    assert checked["set"] == {"fixity_status": "modified"}
    assert _events(ctx, row.id, "file.repaired")[0]["set"] == {"fixity_status": "ok"}
    alerts = _alerts(ctx)
    assert alerts[("fixity.repaired", f"file:{row.id}")].severity == "warning"
    assert ("fixity.modified", row.store_path) not in alerts
    assert report.counts()["repaired"] == 1
    assert report.counts()["archive"]["store_restored"] == 1
    with ctx.ledger.session() as s:  # the row's history replays to its state
        verified = audit.verify(s)
    assert verified.ok, verified.problems

    clock.advance(DAY)
    again = run_fixity(ctx, full=True)
    assert again.findings == [] and again.archive is not None and again.archive.findings == []


def test_a_deleted_store_file_is_restored(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    ctx = _station(tmp_path, clock, card)
    row = _rows(ctx)[1]
    path = _store(ctx, row)
    path.unlink()

    report = run_fixity(ctx, full=True)

    [fixed] = report.of("repaired")
    assert fixed.file_id == row.id and report.problems == []
    assert blake3.blake3(path.read_bytes()).hexdigest() == row.blake3
    assert _link(ctx, row).stat().st_ino == path.stat().st_ino
    [event] = _events(ctx, row.id, "file.repaired")
    assert (event["was"], event["found"], event["restored"]) == ("missing", None, row.blake3)


@pytest.mark.parametrize("pg_url", BACKENDS, indirect=True)
def test_a_flipped_archive_copy_is_made_again_from_the_store(
    tmp_path: Path, clock: FixedClock, card: Recorder, pg_url: str | None
) -> None:
    ctx = _station(tmp_path, clock, card, ledger_url=pg_url)
    row = _rows(ctx)[2]
    copy_row = _copy(ctx, row.id)
    copy = tmp_path / "archive2" / copy_row.path
    damaged = _flip(copy)

    report = run_fixity(ctx, full=True)

    assert report.archive is not None and report.archive.problems == []
    [found] = report.archive.findings
    assert (found.file_id, found.status, found.action) == (row.id, "modified", "repaired")
    assert found.found == damaged
    assert copy.read_bytes() == _store(ctx, row).read_bytes()
    assert stat.S_IMODE(copy.stat().st_mode) == 0o440
    bag = tmp_path / "archive2" / "st-test" / copy_row.batch
    bagit.Bag(str(bag)).validate()  # the manifests still hold: the same content
    assert list((tmp_path / "archive2" / INCOMING).glob("*.part")) == []
    again = _copy(ctx, row.id)
    assert (again.fixity_status, again.last_fixity_at) == ("ok", clock.now())
    [event] = _events(ctx, row.id, "archive.copy_repaired")
    assert (event["found"], event["restored"], event["source"]) == (
        damaged,
        row.blake3,
        row.store_path,
    )
    assert _alerts(ctx)[("archive.copy_repaired", f"disk2:{copy}")].severity == "warning"
    assert report.counts()["archive"]["copies_repaired"] == 1


def test_both_copies_bad_is_a_critical_alert_and_nothing_is_overwritten(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    ctx = _station(tmp_path, clock, card)
    row = _rows(ctx)[0]
    path, copy = _store(ctx, row), tmp_path / "archive2" / _copy(ctx, row.id).path
    bad_store, bad_copy = _flip(path), _flip(copy, at=2000)
    before = (path.read_bytes(), copy.read_bytes())

    report = run_fixity(ctx, full=True)

    assert [f.file_id for f in report.of("modified")] == [row.id]
    assert report.archive is not None
    assert [f.action for f in report.archive.problems] == ["unrepairable"]
    assert (path.read_bytes(), copy.read_bytes()) == before
    alert = _alerts(ctx)[("fixity.unrepairable", f"file:{row.id}")]
    assert alert.severity == "critical"
    for part in (row.store_path, str(path), str(copy), row.blake3, bad_store, bad_copy):
        assert part in alert.message
    assert _events(ctx, row.id, "file.repaired") == []
    assert _events(ctx, row.id, "archive.copy_repaired") == []
    assert _rows(ctx)[0].fixity_status == "modified" and _copy(ctx, row.id).fixity_status == (
        "modified"
    )


def test_a_dry_run_says_what_it_would_repair_and_changes_nothing(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    ctx = _station(tmp_path, clock, card)
    first, second, *_ = _rows(ctx)
    path, copy = _store(ctx, first), tmp_path / "archive2" / _copy(ctx, second.id).path
    _flip(path)
    _flip(copy)
    before = (path.read_bytes(), copy.read_bytes())
    with ctx.ledger.session() as s:
        events = s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))

    report = run_fixity(ctx, dry_run=True, full=True)

    [store_finding] = report.of("modified")
    assert (
        store_finding.file_id == first.id and "would be restored from disk2" in store_finding.note
    )
    assert report.archive is not None
    [copy_finding] = report.archive.findings
    assert (copy_finding.file_id, copy_finding.action) == (second.id, "would-repair")
    assert (path.read_bytes(), copy.read_bytes()) == before
    with ctx.ledger.session() as s:
        assert s.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1)) == events
    assert _copy(ctx, second.id).fixity_status is None and _rows(ctx)[0].fixity_status is None
    assert _alerts(ctx) == {}


@pytest.mark.parametrize("pg_url", BACKENDS, indirect=True)
def test_an_absent_target_is_skipped_and_keeps_its_own_cycle(
    tmp_path: Path, clock: FixedClock, card: Recorder, pg_url: str | None
) -> None:
    ctx = _station(tmp_path, clock, card, extra="fixity_cycle_days = 2", ledger_url=pg_url)
    checked = clock.now()
    first = run_fixity(ctx, full=True)
    assert first.archive is not None and first.archive.targets[0].ok == len(_rows(ctx))
    target = tmp_path / "archive2"
    target.rename(tmp_path / "unplugged")

    clock.advance(3 * DAY)
    away = run_fixity(ctx)
    assert away.archive is not None
    [t] = away.archive.targets
    assert t.status == "absent" and str(target) in t.note
    assert {_copy(ctx, r.id).last_fixity_at for r in _rows(ctx)} == {checked}

    (tmp_path / "unplugged").rename(target)
    back = run_fixity(ctx)  # not --all: its copies are overdue on its 2-day cycle
    assert back.archive is not None
    [t] = back.archive.targets
    assert (t.status, t.due, t.ok) == ("checked", len(_rows(ctx)), len(_rows(ctx)))
    assert {_copy(ctx, r.id).last_fixity_at for r in _rows(ctx)} == {clock.now()}

    clock.advance(DAY)  # within its cycle: only the day's share is due
    later = run_fixity(ctx)
    assert later.archive is not None and later.archive.targets[0].due < len(_rows(ctx))


def test_an_optical_target_is_checked_by_its_image_and_a_bad_image_made_again(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    need(tools=("xorriso",), why="disc images are written and read back by xorriso")
    ctx = _station(tmp_path, clock, card, kind="optical")
    rows = _rows(ctx)
    copy_row = _copy(ctx, rows[0].id)
    image = tmp_path / "archive2" / "st-test" / f"{copy_row.batch}.iso"
    assert image.is_file()

    clean = run_fixity(ctx, full=True)
    assert clean.archive is not None and clean.archive.findings == []
    assert clean.archive.targets[0].ok == len(rows)

    # One byte of the first recording flipped inside the image: the bag's SHA-256 catches it.
    content = _store(ctx, rows[0]).read_bytes()
    data = bytearray(image.read_bytes())
    at = data.find(content[:4096])
    assert at >= 0
    data[at + len(content) // 2] ^= 0xFF
    os.chmod(image, 0o640)
    image.write_bytes(bytes(data))
    clock.advance(DAY)

    report = run_fixity(ctx, full=True)

    assert report.archive is not None and report.archive.problems == []
    assert {f.action for f in report.archive.findings} == {"repaired"}
    assert all(f.path.startswith(f"{image}:/data/") for f in report.archive.findings)
    assert any("does not match its SHA-256" in f.note for f in report.archive.findings)
    disc.check_image(image)  # made again: every file matches the bag's manifest
    [event, *_] = _events(ctx, rows[0].id, "archive.copy_repaired")
    assert event["image"] == str(image)

    # With the staged bag gone (the disc burnt), a store file is restored from the image.
    shutil.rmtree(tmp_path / "archive2" / "st-test" / copy_row.batch)
    path = _store(ctx, rows[0])
    _flip(path)
    clock.advance(DAY)
    again = run_fixity(ctx, full=True)
    [fixed] = again.of("repaired")
    assert fixed.file_id == rows[0].id and f"{image}:/data/" in fixed.note
    assert blake3.blake3(path.read_bytes()).hexdigest() == rows[0].blake3


def test_an_optical_image_written_by_xorriso_before_udf_is_still_checked_and_read(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    """Targets made by older dockd hold images xorriso wrote (MD5 tags, no UDF): the
    sweep checks them by their MD5s and restores a store file from one."""
    need(tools=("xorriso",), why="disc images are written and read back by xorriso")
    ctx = _station(tmp_path, clock, card, kind="optical")
    rows = _rows(ctx)
    batch = _copy(ctx, rows[0].id).batch
    station = tmp_path / "archive2" / "st-test"
    image = station / f"{batch}.iso"
    os.chmod(image, 0o640)
    image.unlink()
    proc = subprocess.run(
        ["xorriso", "-abort_on", "FAILURE", "-local_charset", "UTF-8", "-md5", "on",
         "-outdev", f"stdio:{image}", "-joliet", "on", "-map", str(station / batch), "/",
         "-commit"],
        capture_output=True, text=True, check=False, env={**os.environ, "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert disc.md5_tagged(image)

    clean = run_fixity(ctx, full=True)
    assert clean.archive is not None and clean.archive.findings == []
    assert clean.archive.targets[0].ok == len(rows)

    shutil.rmtree(station / batch)  # the disc burnt: only the image is left
    path = _store(ctx, rows[0])
    _flip(path)
    clock.advance(DAY)
    again = run_fixity(ctx, full=True)
    [fixed] = again.of("repaired")
    assert fixed.file_id == rows[0].id and f"{image}:/data/" in fixed.note
    assert blake3.blake3(path.read_bytes()).hexdigest() == rows[0].blake3
    assert disc.md5_tagged(image)  # read, not made again


def test_a_repair_cut_short_leaves_no_half_file(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    """A crash mid-repair leaves a ``.part`` of a dead process in ``.incoming`` (the store's
    or the target's), never a half file in place; the next run removes it."""
    ctx = _station(tmp_path, clock, card)
    dead = "999999999-0123456789abcdef"  # no such PID
    leftovers = [
        tmp_path / "archive2" / INCOMING / f"{dead}.part",
        ctx.config.store.root / INCOMING / f"{dead}.part",
    ]
    for part in leftovers:
        part.parent.mkdir(mode=0o750, exist_ok=True)
        part.write_bytes(b"half of a recording")
    station = tmp_path / "archive2" / "st-test"
    extracted = station / ".fixity-repair-0123abcd"  # a copy taken out of a disc image
    (extracted / "data").mkdir(parents=True)
    (extracted / "data" / "copy").write_bytes(b"half")
    (extracted / "data").chmod(0o500)
    leftovers += [extracted, station / ".fixity-20260316T020000Z-r1.iso-0123abcd"]
    leftovers[-1].write_bytes(b"half an image")
    batches = sorted(p.name for p in station.iterdir() if not p.name.startswith("."))
    # A crashed ingest's publish marker is its recovery's to settle (it needs the ledger).
    marker = ctx.config.store.root / INCOMING / f"{dead}.pub"
    marker.write_text('{"path": "2026/03/15/x.mp4"}')
    row = _rows(ctx)[0]
    _flip(_store(ctx, row))

    report = run_fixity(ctx, full=True)

    assert [f.file_id for f in report.of("repaired")] == [row.id]
    assert [p for p in leftovers if p.exists()] == []
    assert marker.exists()
    assert sorted(p.name for p in station.iterdir()) == batches  # the archive's own: kept
    assert blake3.blake3(_store(ctx, row).read_bytes()).hexdigest() == row.blake3


def test_dockd_sweep_fixity_shows_the_copies_and_the_repairs(
    tmp_path: Path,
    clock: FixedClock,
    card: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = _station(tmp_path, clock, card)
    first, second, *_ = _rows(ctx)
    _flip(_store(ctx, first))
    _flip(tmp_path / "archive2" / _copy(ctx, second.id).path)
    config = write_config(tmp_path, _target(tmp_path))
    act_as_new(monkeypatch, "keeper", "admin", config=config)
    capsys.readouterr()

    assert (
        main(["--config", str(config), "sweep", "fixity", "--all", "--dry-run", "-f", "csv"]) == 1
    )
    out = capsys.readouterr()
    assert "would-repair" in out.out and "would be restored from disk2" in out.out
    assert "archive target disk2: checked" in out.err

    assert main(["--config", str(config), "sweep", "fixity", "--all", "-f", "json"]) == 0
    [run] = json.loads(capsys.readouterr().out)
    assert run["repaired"] == 1 and run["archive"]["store_restored"] == 1
    assert run["archive"]["copies_repaired"] == 1
    assert run["archive"]["targets"]["disk2"]["modified"] == 1
    [copy] = run["copies"]
    assert (copy["file_id"], copy["status"], copy["action"]) == (second.id, "modified", "repaired")
    [found] = run["findings"]
    assert (found["kind"], found["file_id"]) == ("repaired", first.id)


def test_with_two_targets_the_good_copy_repairs_the_store_which_repairs_the_bad_copy(
    tmp_path: Path, clock: FixedClock, card: Recorder
) -> None:
    (tmp_path / "archive3").mkdir()
    third = f'[[archive.targets]]\nname = "disk3"\npath = "{tmp_path / "archive3"}"\nreserve_mb = 0'
    ctx = _station(tmp_path, clock, card, extra=third)
    row = _rows(ctx)[0]
    with ctx.ledger.session() as s:
        on = {
            c.target: c.path
            for c in s.scalars(select(ArchiveCopy).where(ArchiveCopy.file_id == row.id))
        }
    bad_copy = tmp_path / "archive2" / on["disk2"]
    good_copy = tmp_path / "archive3" / on["disk3"]
    damaged = _flip(_store(ctx, row))
    _flip(bad_copy, at=3000)

    dry = run_fixity(ctx, dry_run=True, full=True)
    assert dry.archive is not None
    assert [f.action for f in dry.archive.findings] == ["would-repair"]
    assert "would be restored from disk3" in dry.of("modified")[0].note

    report = run_fixity(ctx, full=True)

    assert report.problems == [] and report.archive is not None and report.archive.problems == []
    assert _store(ctx, row).read_bytes() == good_copy.read_bytes() == bad_copy.read_bytes()
    [restored] = _events(ctx, row.id, "file.repaired")
    assert (restored["found"], restored["source"]) == (
        damaged,
        {"target": "disk3", "path": on["disk3"], "where": str(good_copy)},
    )
    [remade] = _events(ctx, row.id, "archive.copy_repaired")
    assert (remade["target"], remade["restored"]) == ("disk2", row.blake3)
