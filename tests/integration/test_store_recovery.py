"""The moments between publish and commit: a commit whose fate is unknown, and a
recovery that must touch only the very file a dead process published."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from dockd import store
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.errors import LedgerError
from dockd.ingest import probe, recovery, take
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import Alert, DockSession, Recording, SessionFailure
from dockd.store import markers
from fixtures.make_recorder import Recorder
from tests.helpers.ledgers import register


def _store_files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and store.INCOMING not in p.parts
    }


@pytest.mark.parametrize("landed", [True, False], ids=["commit-landed", "commit-lost"])
def test_a_commit_that_fails_keeps_the_file_exactly_when_its_row_exists(
    ctx: Context,
    recorder: Recorder,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """A connection lost after COMMIT was sent: the row may or may not be there. The
    file stays exactly when it is, so the ledger never names a file that is gone.
    Where the rows are there, the files are stored and the dock goes on (here every
    commit is answered so); where not, the dock ends with the ledger's error."""
    register(ctx.ledger, clock, recorder)
    real = take._commit_rows
    tried: list[int] = []  # the rows of each commit that failed (the files verified by then)

    def lost_at_commit(c: Context, rows: Sequence[tuple[Recording, str | None]]) -> list[int]:
        tried.append(len(rows))
        if landed:
            real(c, rows)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(take, "_commit_rows", lost_at_commit)
    total = len(recorder.recordings)
    if landed:
        first = run_ingest(ctx, recorder.root)
        assert first.ok and first.count("stored") == total == sum(tried)
        with ctx.ledger.read() as s:
            session = s.get_one(DockSession, first.session_id)
            assert (session.outcome, session.files_stored) == ("complete", total)
            ids = set(s.scalars(select(Recording.id)))
        assert {f.file_id for f in first.files} == ids  # each outcome names its row
    else:
        with pytest.raises(LedgerError):
            run_ingest(ctx, recorder.root)
        assert len(tried) == 1
    monkeypatch.undo()
    with ctx.ledger.read() as s:
        rows = list(s.scalars(select(Recording)))
    root = ctx.config.store.root
    assert _store_files(root) == {r.store_path for r in rows}
    assert len(rows) == (total if landed else 0)
    assert not list((root / store.INCOMING).glob("*.pub"))  # settled either way

    again = run_ingest(ctx, recorder.root)  # the next dock: every recording once
    with ctx.ledger.read() as s:
        rows = list(s.scalars(select(Recording)))
    assert _store_files(root) == {r.store_path for r in rows}
    assert not any("~2" in r.store_path for r in rows)
    assert again.count("present") == (total if landed else 0)
    assert again.count("stored") + again.count("present") == total


def _copied(root: Path, tmp_path: Path, data: bytes = b"recording") -> store.Incoming:
    """``data`` copied into the store's ``.incoming``, as an ingest's copy leaves it."""
    src = tmp_path / "src"
    src.write_bytes(data)
    fd = os.open(src, os.O_RDONLY)
    try:
        return store.copy_into_incoming(root, fd, buffer_size=1 << 16)
    finally:
        os.close(fd)


def test_recovery_removes_only_the_file_the_dead_process_published(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rel = PurePosixPath("2026/03/15/DV-0001/a.mp4")

    def copy() -> store.Incoming:
        return _copied(root, tmp_path)

    dead = subprocess.Popen(["true"])
    dead.wait()

    def as_dead(inc: store.Incoming) -> None:
        """Make the marker look like one a killed process left (its PID is gone)."""
        marker = inc.marker
        assert marker is not None
        store.abandon(inc)
        marker.rename(marker.with_name(f"{dead.pid}-{marker.name.split('-', 1)[1]}"))

    # A killed process published a.mp4 and died before its ledger row.
    first = copy()
    assert store.publish(root, first, rel) == rel
    as_dead(first)
    # Meanwhile the file was removed and the same recording published again by a live
    # process (same name, same content, another inode), whose row is not yet written.
    (root / rel).chmod(0o600)
    (root / rel).unlink()
    second = copy()
    assert store.publish(root, second, rel) == rel

    _removed, orphans = store.recover_incoming(root, lambda _p, _h: False)
    assert orphans == [] and (root / rel).read_bytes() == b"recording"  # not the dead one's
    assert store.in_flight(root) == {rel}  # the live one's marker stands

    as_dead(second)  # now that one dies too, before its row: its own file goes
    _removed, orphans = store.recover_incoming(root, lambda _p, _h: False)
    assert orphans == [rel] and not (root / rel).exists()


def test_recovery_takes_back_a_cut_short_file_on_a_filesystem_mounted_again(
    tmp_path: Path,
) -> None:
    """A crash before the commit may leave the published file cut short (its data is
    fsynced in the verify stage, after the link), and the store's filesystem may come
    back with another device number (btrfs, NFS, LVM number theirs at each mount): the
    dead process's file is still the one its marker names, by inode, and goes."""
    root = tmp_path / "store"
    rel = PurePosixPath("2026/03/15/DV-0001/a.mp4")
    inc = _copied(root, tmp_path, b"recording " * 1000)
    assert store.publish(root, inc, rel, sync=False) == rel
    marker = inc.marker
    assert marker is not None
    target = root / rel
    st = target.stat()
    mtime_ns = st.st_mtime_ns
    markers.write_marker(marker, rel, inc.blake3, (st.st_dev + 1, st.st_ino, mtime_ns))
    target.chmod(0o600)
    with target.open("r+b") as f:  # its data lost in the crash, its inode as it was
        f.truncate(4096)
    os.utime(target, ns=(mtime_ns, mtime_ns))
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.abandon(inc)
    marker.rename(marker.with_name(f"{dead.pid}-{marker.name.split('-', 1)[1]}"))

    _removed, orphans = store.recover_incoming(root, lambda _p, _h: False)
    assert orphans == [rel] and not target.exists()
    assert _store_files(root) == set()


def test_recovery_leaves_the_store_while_a_dead_process_may_still_commit(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a dead process's server process could not be ended (PostgreSQL), its
    commit may still land: the files it published are left with their markers, and a
    later recovery, once it is ended, decides them."""
    root = ctx.config.store.root
    rel = PurePosixPath("2026/03/15/DV-0001/a.mp4")
    inc = _copied(root, tmp_path)
    assert store.publish(root, inc, rel) == rel
    marker = inc.marker
    assert marker is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.abandon(inc)
    marker.rename(marker.with_name(f"{dead.pid}-{marker.name.split('-', 1)[1]}"))

    left = ["4242 ('dockd ...')"]
    monkeypatch.setattr(type(ctx.ledger), "end_dead", lambda _self, _station: left)
    recovery.recover(ctx)
    assert _store_files(root) == {rel.as_posix()}
    assert list((root / store.INCOMING).glob("*.pub"))
    monkeypatch.undo()
    recovery.recover(ctx)  # ended now (SQLite: nothing to end): no row, so it goes
    assert _store_files(root) == set()
    assert not list((root / store.INCOMING).glob("*.pub"))


def test_a_file_a_read_only_store_kept_from_being_taken_back_goes_at_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A published file without a row is taken back (the ledger failed, the session
    stopped) as the store turns read-only after a disk error: the file and its marker
    stay, and the next recovery removes the file, so the store never keeps a file the
    ledger does not name."""
    root = tmp_path / "store"
    rel = PurePosixPath("2026/03/15/DV-0001/a.mp4")
    inc = _copied(root, tmp_path)
    assert store.publish(root, inc, rel) == rel

    def read_only(*_args: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(store, "unpublish", read_only)
    taken = take.Taken("DCIM/a.mp4", 1, inc, rel, Recording(), None)
    take.take_back(root, taken)  # logged, not raised: the session goes on to report
    monkeypatch.undo()
    assert (root / rel).read_bytes() == b"recording"
    left = markers.read_markers(root / store.INCOMING)
    assert [(m.path, m.alive) for m in left] == [(rel, False)]  # for recovery, not ours

    _removed, orphans = store.recover_incoming(root, lambda _p, _h: False)
    assert orphans == [rel] and not (root / rel).exists()
    assert markers.read_markers(root / store.INCOMING) == []


def test_recovery_beside_a_dock_that_publishes_leaves_its_files_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every dock recovers the store before it copies, while the other docks of the
    daemon publish: a temporary listed in ``.incoming`` may be gone (published, its
    marker renamed into place) by the time recovery looks at it. Eight recorders docked
    at once failed two docks that way ("No such file or directory: ... .pub-new")."""
    root = tmp_path / "store"
    live = _copied(root, tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = root / ".incoming" / f"{dead.pid}-0123456789abcdef.part"  # a killed process's
    left.write_bytes(b"half a recording")
    real_alive = markers.owner_alive

    def published_meanwhile(path: Path, **kw: Any) -> bool:
        """The other dock publishes its copy just after recovery listed it."""
        if path == live.path:
            store.publish(root, live, PurePosixPath("2026/03/15/DV-0002/a.mp4"))
        return real_alive(path, **kw)

    monkeypatch.setattr(markers, "owner_alive", published_meanwhile)
    removed, orphans = store.recover_incoming(root, lambda _p, _h: False)

    assert removed == [left] and orphans == []
    assert (root / "2026/03/15/DV-0002/a.mp4").read_bytes() == b"recording"
    assert store.in_flight(root) == {PurePosixPath("2026/03/15/DV-0002/a.mp4")}


def test_a_marker_file_holds_one_whole_marker_or_none(tmp_path: Path) -> None:
    """An ingest writes each publish marker in place into a file it made once (one
    fdatasync, where a new file costs two fsyncs) and blanks it once the file is
    settled. A crash in the middle of such a write can leave bytes of two markers: the
    checksum makes that no marker, so recovery never removes a file on its word. Blank
    and cut files of dead processes are cleared; those of a live ingest are not."""
    root = tmp_path / "store"
    incoming = root / store.INCOMING

    slots = store.MarkerSlots(incoming)
    a, b = PurePosixPath("2026/03/15/DV-0001/a.mp4"), PurePosixPath("2026/03/15/DV-0001/b.mp4")
    first = _copied(root, tmp_path, b"recording a")
    store.publish(root, first, a, slots=slots)
    used = first.marker
    assert used is not None
    a_marker = used.read_bytes()
    store.settle(first)  # committed: its marker file is blank, and kept for the next
    assert used.read_bytes().strip() == b""
    second = _copied(root, tmp_path, b"recording b")
    store.publish(root, second, b, slots=slots)
    assert second.marker == used and [m.path for m in markers.read_markers(incoming)] == [b]

    # The ingest dies while it writes b's marker over a's (whose blanking had not
    # reached the disk): a's path and inode, b's hash. Taken at its word, a's committed
    # file (its row has a's hash, not b's) would go as an orphan.
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.abandon(second)
    cut = incoming / f"{dead.pid}-{used.name.split('-', 1)[1]}"
    used.rename(cut)
    cut.write_bytes(a_marker.replace(first.blake3.encode(), second.blake3.encode()))
    blank = incoming / f"{dead.pid}-0123456789abcdef.pub"  # a dead ingest's spare one
    blank.write_bytes(b" " * 4096)
    spare = slots.take()  # this ingest's, not in use
    slots.give_back(spare)

    assert markers.read_markers(incoming) == []  # neither the cut one nor a blank one
    _removed, orphans = store.recover_incoming(root, lambda p, h: (p, h) == (a, first.blake3))
    assert orphans == [] and (root / a).read_bytes() == b"recording a"
    assert sorted(p.name for p in incoming.iterdir()) == [spare.name]
    slots.close()
    assert list(incoming.iterdir()) == []


def test_recovery_never_removes_a_marker_file_an_ingest_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dock's recovery reads a marker of another dock of the daemon; that dock then
    settles its file (the marker file blanked, kept for its next) and, while recovery
    asks the ledger about the old marker, publishes its next file with the same marker
    file. Recovery must leave that file alone: removed, the next file would stand in
    the store with no marker, an orphan no recovery could find after a crash."""
    root = tmp_path / "store"
    incoming = root / store.INCOMING

    slots = store.MarkerSlots(incoming)
    x, y = PurePosixPath("2026/03/15/DV-0001/x.mp4"), PurePosixPath("2026/03/15/DV-0001/y.mp4")
    first = _copied(root, tmp_path, b"recording x")
    store.publish(root, first, x, slots=slots)
    second = _copied(root, tmp_path, b"recording y")
    real_alive = markers.owner_alive

    def settled_meanwhile(path: Path, **kw: Any) -> bool:
        """The other dock commits x just after recovery read its marker, and publishes
        y, in the same marker file, just after recovery asked whose it is."""
        if path != first.marker:
            return real_alive(path, **kw)
        store.settle(first)
        alive = real_alive(path, **kw)
        store.publish(root, second, y, slots=slots)
        return alive

    monkeypatch.setattr(markers, "owner_alive", settled_meanwhile)
    store.recover_incoming(root, lambda p, _h: p == x)

    assert second.marker is not None and second.marker.is_file()
    assert store.in_flight(root) == {y}
    store.settle(second)
    slots.close()
    assert list(incoming.iterdir()) == []


def test_a_marker_file_that_cannot_be_made_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full store refuses the new marker file's sync: the publish fails, and no
    half-made marker file is left that this process would keep as its own."""
    root = tmp_path / "store"
    inc = _copied(root, tmp_path)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store.makedirs(root, PurePosixPath("2026/03/15/DV-0001"))  # its folder is there
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        store.publish(root, inc, PurePosixPath("2026/03/15/DV-0001/a.mp4"))
    monkeypatch.undo()
    assert inc.marker is None and not (root / "2026/03/15/DV-0001/a.mp4").exists()
    assert [p.suffix for p in (root / store.INCOMING).iterdir()] == [".part"]
    inc.discard()


def test_interrupted_while_the_file_before_is_verified_that_file_is_still_reported(
    ctx: Context,
    recorder: Recorder,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C lands in the pipeline thread while file 1's verify runs in the other: file 1
    still ends reported (here its re-read mismatched: a failure row and a critical alert
    saying it is NOT stored), and file 2 leaves nothing in the store."""
    register(ctx.ledger, clock, recorder)
    real_hash, real_probe = store.hash_stored, probe.probe
    probes = 0

    def bad_disk(path: Path, **kw: Any) -> str:
        real_hash(path, **kw)
        return "0" * 64  # the store gave back other bytes

    def interrupt_second(path: Path, **kw: Any) -> Any:
        nonlocal probes
        probes += 1
        if probes == 2:
            raise KeyboardInterrupt
        return real_probe(path, **kw)

    monkeypatch.setattr(store, "hash_stored", bad_disk)
    monkeypatch.setattr(take, "probe", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        run_ingest(ctx, recorder.root)
    monkeypatch.undo()

    root = ctx.config.store.root
    with ctx.ledger.read() as s:
        assert list(s.scalars(select(Recording))) == []  # not verified: never a row
        failure = s.scalars(select(SessionFailure)).one()
        alert = s.scalars(select(Alert).where(Alert.kind == "ingest.file_failed")).one()
        session = s.scalars(select(DockSession)).one()
    first = failure.source_path  # the first file taken, whose verify was behind
    assert first in {r.relpath for r in recorder.recordings}
    assert "re-read of the stored copy" in failure.reason
    assert first in alert.message and "NOT stored" in alert.message
    assert (session.files_seen, session.files_failed) == (1, 1)
    assert _store_files(root) == set()
    assert not list((root / store.INCOMING).iterdir())  # no .part, no marker left
