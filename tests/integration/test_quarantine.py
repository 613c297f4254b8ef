"""Quarantine release: a recorder registered after it docked gets its footage into the store,
byte for byte, re-pointed, audited, and found there when it docks again."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import blake3
import pytest
from sqlalchemy import select

from dockd import store
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import NotFound
from dockd.ingest import quarantine
from dockd.ingest.outcome import FileStatus
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import audit, registry
from dockd.ledger.models import Recording
from dockd.ledger.queries import FileFilter, find_files
from dockd.sweeps.fixity import run_fixity
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.ledgers import register
from tests.helpers.station import write_config


def files_under(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and store.INCOMING not in p.parts)


def rows(ctx: Context) -> list[Recording]:
    with ctx.ledger.read() as s:
        return list(s.scalars(select(Recording).order_by(Recording.id)))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("id_file", "ref"), [(True, "DV-0001"), (False, "serial:ZFY2024000123")], ids=["id", "names"]
)
def test_released_footage_is_stored_byte_for_byte_and_a_redock_finds_it(
    ctx: Context,
    id_file: bool,
    ref: str,
    clock: FixedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # without an ID file the recorder is known only by the serial in its file names
    recorder = make_recorder(tmp_path / "rec", id_file=id_file)
    first = run_ingest(ctx, recorder.root)  # nothing registered: all to quarantine
    assert first.quarantined and first.device_ref == ref
    held = rows(ctx)
    assert held and all(r.unregistered for r in held)

    register(ctx.ledger, clock, recorder)  # registered and assigned afterwards
    sgt = dataclasses.replace(ctx, actor="sgt-li")
    result = quarantine.release(sgt, "DV-0001", reason="registered after its first dock")
    assert result.failed == []
    assert sorted(i for i, _ in result.moved) == [r.id for r in held]

    tz = ctx.config.station.tz
    root = ctx.config.store.root
    by_source = {r.source_path: r for r in rows(ctx)}
    assert set(by_source) == {rec.relpath for rec in recorder.recordings}
    for rec in recorder.recordings:
        row = by_source[rec.relpath]
        original = recorder.path(rec).read_bytes()
        stored = root / row.store_path
        assert stored.read_bytes() == original
        assert blake3.blake3(stored.read_bytes()).hexdigest() == row.blake3
        assert stat.S_IMODE(stored.stat().st_mode) == 0o440
        assert not row.unregistered and "unregistered" not in row.flags
        assert row.device_ref == "DV-0001" and row.device_id is not None
        assert row.officer_id is not None
        assert "/DV-0001/" in f"/{row.store_path}"
        local = row.recorded_start.astimezone(tz)
        assert row.store_path.startswith(local.strftime("%Y/%m/%d/")), row.store_path
    assert files_under(ctx.config.store.quarantine_root) == []
    assert len(files_under(root)) == len(recorder.recordings)
    assert not list((root / store.INCOMING).glob("*"))
    with ctx.ledger.read() as s:  # what `dockd ledger query --device DV-0001` lists
        listed = find_files(s, FileFilter(device="DV-0001"), tz)
    assert sorted(f["source_path"] for f in listed) == sorted(by_source)
    assert {f["officer"] for f in listed} == {recorder.badge}
    assert not any("unregistered" in str(f.get("flags")) for f in listed)

    again = run_ingest(ctx, recorder.root)  # the same recorder docked again
    assert not again.quarantined
    assert {f.status for f in again.files} == {FileStatus.PRESENT}
    assert len(files_under(root)) == len(recorder.recordings)  # no second copy
    assert len(rows(ctx)) == len(recorder.recordings)

    with ctx.ledger.session() as s:
        assert audit.verify(s).ok
        one = by_source[recorder.recordings[0].relpath]
        [ev] = [e for e in audit.history(s, "file", one.id) if e.action == "file.release"]
    details = json.loads(ev.details)
    assert ev.actor == "sgt-li" and ev.at.replace(tzinfo=UTC) == clock.now()
    assert details["reason"] == "registered after its first dock"
    assert details["old"]["store_path"].startswith("quarantine/")
    assert details["old"]["device_ref"] == ref and details["old"]["officer_id"] is None
    assert "unregistered" in details["old"]["flags"]
    assert details["set"]["store_path"] == one.store_path

    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    capsys.readouterr()  # the ingest's log lines
    code, out, _ = cli(capsys, "audit", "history", "--file", str(one.id), "--format", "json")
    assert code == 0 and "file.release" in [e["action"] for e in json.loads(out)]
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and "audit trail OK" in out


def test_release_of_an_unregistered_device_is_refused_naming_the_command(
    ctx: Context,
    recorder: Recorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_ingest(ctx, recorder.root)
    before = files_under(ctx.config.store.quarantine_root)
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    capsys.readouterr()  # the ingest's log lines

    code, out, _ = cli(capsys, "quarantine", "list", "--format", "json")
    assert code == 0
    assert {f["recorder"] for f in json.loads(out)} == {"DV-0001"}
    assert len(json.loads(out)) == len(recorder.recordings)

    code, out, err = cli(capsys, "quarantine", "release", "DV-0001", "--reason", "found it")
    assert code != 0
    assert "dockd devices add DV-0001" in err, err
    assert files_under(ctx.config.store.quarantine_root) == before
    assert all(r.unregistered for r in rows(ctx))
    with pytest.raises(NotFound, match="is not registered"):
        quarantine.release(ctx, "DV-0001", reason="again")

    # registered from the command line, then released by it
    add = ("devices", "add", "DV-0001", "--serial", recorder.serial, "--brand", "T", "--model", "M")
    assert cli(capsys, *add)[0] == 0
    code, out, err = cli(capsys, "quarantine", "release", "DV-0001", "--reason", "registered")
    assert code == 0, err
    assert f"{len(recorder.recordings)} file(s) released to DV-0001, 0 not" in out
    assert files_under(ctx.config.store.quarantine_root) == []
    code, out, _ = cli(capsys, "quarantine", "list", "--format", "json")
    assert json.loads(out) == []


def test_a_quarantine_copy_whose_bytes_changed_is_not_released(
    ctx: Context, recorder: Recorder, clock: FixedClock
) -> None:
    run_ingest(ctx, recorder.root)
    register(ctx.ledger, clock, recorder)
    victim = rows(ctx)[0]
    path = ctx.config.store.quarantine_root / victim.store_path
    os.chmod(path, 0o640)
    with path.open("r+b") as f:
        f.write(b"X")

    result = quarantine.release(ctx, "DV-0001", reason="registered")
    assert [i for i, _ in result.failed] == [victim.id]
    assert "BLAKE3" in result.failed[0][1]
    with ctx.ledger.read() as s:
        row = s.get_one(Recording, victim.id)
        assert row.unregistered and row.store_path == victim.store_path
        assert audit.verify(s).ok
    assert path.exists()
    assert len(result.moved) == len(recorder.recordings) - 1
    assert not list((ctx.config.store.root / store.INCOMING).glob("*"))


def test_a_device_conflict_is_resolved_by_naming_the_right_device(
    ctx: Context, tmp_path: Path, clock: FixedClock
) -> None:
    # the ID file says serial A (DV-0001's) and device DV-0002: two registered devices
    rec = make_recorder(tmp_path / "rec", serial="SER-A", device_number="DV-0002", extras=False)
    with ctx.ledger.session() as s:
        for number, serial in (("DV-0001", "SER-A"), ("DV-0002", "SER-B")):
            registry.add_device(
                s,
                number=number,
                serial=serial,
                brand="Test",
                model="BWC-1",
                at=datetime(2025, 12, 1, tzinfo=UTC),
                station="st-test",
                actor="admin",
            )
    first = run_ingest(ctx, rec.root)
    assert first.quarantined
    assert all(r.device_conflict and not r.unregistered for r in rows(ctx))
    # While in quarantine, the sweeps find the conflict's files where they are.
    ctx.config.store.root.mkdir(parents=True, exist_ok=True)  # a station's store exists
    held = run_fixity(ctx, full=True)
    assert (held.checked, held.ok, held.problems) == (len(rec.recordings), len(rec.recordings), [])
    # by device alone nothing is picked: a conflict needs the session or the files named
    assert quarantine.release(ctx, "DV-0001", reason="label says DV-0001").moved == []

    result = quarantine.release(
        ctx, "DV-0001", reason="label on the recorder says DV-0001", session_id=first.session_id
    )
    assert len(result.moved) == len(rec.recordings) and not result.failed
    for row in rows(ctx):
        assert not row.device_conflict and row.device_ref == "DV-0001"
        original = rec.path(next(r for r in rec.recordings if r.relpath == row.source_path))
        assert (ctx.config.store.root / row.store_path).read_bytes() == original.read_bytes()
    assert files_under(ctx.config.store.quarantine_root) == []

    (rec.root / "DEVICE.ID").write_text("serial=SER-A\ndevice=DV-0001\n", encoding="utf-8")
    again = run_ingest(ctx, rec.root)  # the ID file corrected: now it is DV-0001
    assert {f.status for f in again.files} == {FileStatus.PRESENT}
    with ctx.ledger.session() as s:
        assert audit.verify(s).ok
