"""The guarantee the overlapped stages must keep (issue 16): no ledger row names a file
before its data was fsynced, with either verify mode, and a store disk that fails the
fsync fails that file alone, leaving nothing of it behind.

Power cannot be cut in a test, so the order is checked at the system calls: every
``fsync`` is noted by the file it synced (device, inode, size, mtime), and each row's
commit asks whether its stored file was fsynced, as it is now, before it."""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd import store
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest import take
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import Recording, SessionFailure
from fixtures.make_recorder import make_recorder, pad_mp4
from tests.helpers.ledgers import register


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _with_verify(ctx: Context, verify: str) -> Context:
    ingest = ctx.config.ingest.model_copy(update={"verify": verify})
    return dataclasses.replace(ctx, config=ctx.config.model_copy(update={"ingest": ingest}))


@pytest.mark.parametrize("verify", ["reread", "none"])
def test_no_row_names_a_file_before_its_data_is_fsynced(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, verify: str
) -> None:
    rec = make_recorder(tmp_path / "rec", extras=False, clips=4)
    register(ctx.ledger, clock, rec)
    vctx = _with_verify(ctx, verify)
    root = vctx.config.store.root
    fsynced: set[tuple[int, int, int, int]] = set()
    checked: list[str] = []
    real_fsync, real_commit = os.fsync, take._commit_rows

    def noting_fsync(fd: int) -> None:
        real_fsync(fd)
        fsynced.add(_identity(os.fstat(fd)))

    def checking_commit(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        for row, _badge in rows:
            stored = _identity(os.stat(root / row.store_path))
            assert stored in fsynced, f"{row.store_path} committed before its fsync"
            checked.append(row.store_path)
        return real_commit(c, rows)

    monkeypatch.setattr(os, "fsync", noting_fsync)
    monkeypatch.setattr(take, "_commit_rows", checking_commit)
    result = run_ingest(vctx, rec.root)
    assert result.ok and result.count("stored") == len(rec.recordings)
    with ctx.ledger.read() as s:
        assert sorted(s.scalars(select(Recording.store_path))) == sorted(checked)


def test_a_failed_fsync_fails_that_file_and_keeps_nothing_of_it(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO from the store's disk at the file's fsync (injected: there is no failing
    disk here) fails that file; the others are stored."""
    rec = make_recorder(tmp_path / "rec", extras=False, clips=3)
    register(ctx.ledger, clock, rec)
    victim = rec.of_kind("video")[1]
    size = 3 << 20  # no other file of the recorder is near this size
    pad_mp4(rec.path(victim), size)
    real_fsync = os.fsync
    failed_once: list[int] = []

    def failing_fsync(fd: int) -> None:
        st = os.fstat(fd)
        if st.st_size == size and not failed_once:
            failed_once.append(st.st_ino)
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    result = run_ingest(ctx, rec.root)
    assert failed_once, "the victim's fsync never ran"
    failed = [f for f in result.files if f.status == "failed"]
    assert [f.relpath for f in failed] == [victim.relpath]
    assert "Input/output error" in (failed[0].reason or "")
    assert result.count("stored") == len(rec.recordings) - 1
    root = ctx.config.store.root
    kept = [p for p in root.rglob("*") if p.is_file() and store.INCOMING not in p.parts]
    assert len(kept) == len(rec.recordings) - 1
    # nothing of the victim: not its name, not its bytes (its size is its alone; an
    # inode number is no proof, the next file may reuse the freed one)
    assert all(p.name != Path(victim.relpath).name and p.stat().st_size != size for p in kept)
    assert not list((root / store.INCOMING).iterdir())  # no temporary, no marker
    with ctx.ledger.read() as s:
        assert victim.relpath not in set(s.scalars(select(Recording.source_path)))
        [failure] = s.scalars(select(SessionFailure)).all()
        assert failure.source_path == victim.relpath


def test_names_that_cannot_be_made_durable_fail_their_files_and_keep_nothing_of_them(
    ctx: Context, tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file's name is made durable (its directory fsynced) in the verify stage, once
    for the files committed together, before their rows: EIO there (injected) fails
    the files of that commit, none of them is left in the store, and the next dock
    takes them."""
    rec = make_recorder(tmp_path / "rec", extras=False, clips=3)
    register(ctx.ledger, clock, rec)
    real_sync_dirs = store.sync_dirs
    failed_once: list[int] = []

    def failing_sync_dirs(folders: Collection[Path]) -> None:
        if not failed_once:
            failed_once.append(len(folders))
            raise OSError(errno.EIO, "Input/output error")
        real_sync_dirs(folders)

    monkeypatch.setattr(store, "sync_dirs", failing_sync_dirs)
    result = run_ingest(ctx, rec.root)
    assert failed_once, "no directory was synced before a commit"
    failed = [f for f in result.files if f.status == "failed"]
    assert failed and all("Input/output error" in (f.reason or "") for f in failed)
    assert result.count("stored") + len(failed) == len(rec.recordings)
    root = ctx.config.store.root
    kept = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and store.INCOMING not in p.parts
    }
    with ctx.ledger.read() as s:
        assert kept == set(s.scalars(select(Recording.store_path)))
    assert not list((root / store.INCOMING).iterdir())  # no temporary, no marker

    monkeypatch.undo()
    again = run_ingest(ctx, rec.root)
    assert again.count("stored") == len(failed)
    assert again.count("present") == len(rec.recordings) - len(failed)
