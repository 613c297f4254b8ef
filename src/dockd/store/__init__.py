"""The store of originals: path template, one-pass copy with hashing, atomic publish.

A file enters the store in three steps, and only the last one makes it visible:

1. ``copy_into_incoming`` streams the source once into ``<root>/.incoming/``,
   feeding every chunk to BLAKE3 as it is written, then fsyncs;
2. the caller probes the temporary copy and decides the final path;
3. ``publish`` links it to its final name without ever replacing an existing
   file, makes it read-only (0440), and fsyncs the directory.

Whatever fails in between, ``Incoming.discard`` removes the temporary file, so
the store never holds a half-file. An ingest copies and publishes without those
fsyncs (``sync=False``) and makes the file durable in its verify stage, beside the
next copy: the file (:func:`sync_file`), then the directories of the files it
commits together, once each (:func:`sync_dirs`), before any row names them.

Between ``publish`` and the ledger commit a published file has no ledger row yet.
``publish`` therefore first writes a marker (``.incoming/<owner>.pub``, durable)
naming the path and hash; ``settle`` blanks it once the row is committed (or the
file unpublished), and the ingest's next file may use its file again (``markers``).
A marker whose process is alive means "in flight" (the fixity sweep does not call
that file unexpected); one whose process is gone is a crash
between publish and commit, and ``recover_incoming`` removes the orphan (the
recorder still holds the file, and was never told it is safe), so the next ingest
never stores a twin. Temporary ``.part`` files of dead processes go the same way;
those of live processes (another dockd on this store) are left alone.

Here are the store's operations; ``paths`` holds the path template, ``markers`` the
bookkeeping of ``.incoming/`` (owner tags, publish markers, dead leftovers).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import blake3

from dockd.store.markers import (
    Marker,
    blank_marker,
    drop_slot,
    new_slot,
    owner_tag,
    read_markers,
    recovery_lock,
    remove_dead_temporaries,
    write_marker,
)
from dockd.store.markers import MarkerSlots as MarkerSlots
from dockd.store.markers import fsync_dir as fsync_dir
from dockd.store.stream import Interrupted as Interrupted
from dockd.store.stream import NoDirect, WriteBack, chunks, on_fuse, read_ahead, read_direct

INCOMING = ".incoming"
FILE_MODE = 0o440
DIR_MODE = 0o750


# From this many directories on, one syncfs(2) of their filesystem is cheaper than an
# fsync of each (ext4 commits its journal for every directory fsync: ~5 ms each).
SYNCFS_FROM = 8


def _syncfs(path: Path) -> bool:
    """syncfs(2) of the filesystem holding ``path``; False where it is not available."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except (OSError, AttributeError):
        return False
    try:
        return bool(libc.syncfs(fd) == 0)
    finally:
        os.close(fd)


def sync_dirs(folders: Collection[Path]) -> None:
    """Make the entries of every directory in ``folders`` durable.

    Each is fsynced; from :data:`SYNCFS_FROM` on one filesystem, one ``syncfs`` of it
    does it for all of them (it also writes back whatever else is dirty there). A
    directory gone since has nothing left in it to make durable: its parent's does.
    """
    by_fs: dict[int, list[Path]] = {}
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):
            by_fs.setdefault(os.stat(folder).st_dev, []).append(folder)
    for live in by_fs.values():
        if len(live) >= SYNCFS_FROM and _syncfs(min(live, key=lambda f: len(f.parts))):
            continue
        for folder in sorted(live, key=lambda f: len(f.parts)):
            with contextlib.suppress(FileNotFoundError):
                fsync_dir(folder)


def makedirs(root: Path, rel: PurePosixPath, *, unsynced: set[Path] | None = None) -> Path:
    """Create the directories of ``rel`` under ``root`` (mode 0750); fsync each new parent,
    or add it to ``unsynced`` for a caller that fsyncs many directories once each.

    A directory that turns out to be a link or a file is refused: nothing is ever
    written outside the tree through a planted link.
    """
    current = root
    for part in rel.parts:
        nxt = current / part
        try:
            nxt.mkdir(mode=DIR_MODE)
            if unsynced is None:
                fsync_dir(current)
            else:
                unsynced.add(current)
        except FileExistsError:
            if nxt.is_symlink() or not nxt.is_dir():
                raise NotADirectoryError(
                    f"{nxt} exists in the store and is not a directory"
                ) from None
        current = nxt
    return current


@dataclass
class Incoming:
    """A fully written temporary copy inside the store, not yet published (fsynced
    unless it was copied with ``sync=False``: then :func:`sync_file` before its row)."""

    path: Path
    size: int
    blake3: str
    # Where ``publish`` records the path it is about to publish (see module doc), and
    # the ingest's marker files it came from (None: a file of its own, removed settled).
    marker: Path | None = None
    slots: MarkerSlots | None = None

    def discard(self) -> None:
        """Remove the temporary copy (once published, a second name of the file). A store
        that cannot (read-only after a disk error) keeps it until the next start, whose
        recovery removes the temporaries of a dead process."""
        with contextlib.suppress(OSError):
            self.path.unlink()

    def identity(self) -> tuple[int, int, int]:
        """(device, inode, mtime in ns) of the copy: a published link of it has the same,
        and a later copy that happens to get the freed inode number back does not."""
        st = self.path.stat()
        return st.st_dev, st.st_ino, st.st_mtime_ns


ProgressFn = Callable[[int], None]


def mkdirs(path: Path) -> None:
    """``mkdir -p`` giving every directory it creates mode 0750 (the store's and the
    per-case tree's: dockd's alone). ``Path.mkdir(parents=True)`` would give the parents
    the umask's mode, 0755 under the usual 022, listing footage names to every user."""
    if path.parent != path and not path.parent.is_dir():
        mkdirs(path.parent)
    path.mkdir(mode=DIR_MODE, exist_ok=True)


def incoming_dir(root: Path) -> Path:
    """``<root>/.incoming``, created if needed: where copies wait to be published."""
    incoming = root / INCOMING
    mkdirs(incoming)
    return incoming


class Hasher(Protocol):
    """Anything that digests bytes fed to it (hashlib's and blake3's hashers)."""

    def update(self, data: memoryview, /) -> object: ...


def write_hashed(
    source_fd: int,
    target: Path,
    hashers: Sequence[Hasher],
    *,
    buffer_size: int,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
    sync: bool = True,
) -> int:
    """Copy an open file, from its current position, into the new file ``target`` (0600,
    never over an existing one), feeding every chunk to each of ``hashers``; fsynced
    (``sync``; else the caller makes it durable before anything names it).

    The source is read exactly once, by a reader thread a few buffers ahead, and the
    target's write-back starts as it is written (:mod:`dockd.store.stream`); the final
    fsync waits for the last stretch only. Returns the number of bytes copied. Raises
    :class:`Interrupted` if ``stop`` is set mid-copy, ``OSError`` on a read or write
    error; in every failure ``target`` is removed before the exception leaves.
    """
    size = 0
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            writeback = WriteBack(out)
            reader = read_ahead if _worth_reading_ahead(source_fd, buffer_size) else chunks
            with contextlib.closing(reader(source_fd, buffer_size, stop, "copy")) as source:
                for chunk in source:
                    for hasher in hashers:
                        hasher.update(chunk)
                    written = 0
                    while written < len(chunk):
                        written += os.write(out, chunk[written:])
                    size += len(chunk)
                    writeback.written(size)
                    if progress is not None:
                        progress(len(chunk))
            if sync:
                os.fsync(out)
        finally:
            os.close(out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise
    return size


def _worth_reading_ahead(fd: int, buffer_size: int) -> bool:
    """A reader thread pays for itself from a few buffers on; a photo of 300 KB is read
    in one ``readv``. What is not a regular file has no size to tell: read ahead."""
    st = os.fstat(fd)
    return not stat.S_ISREG(st.st_mode) or st.st_size > 2 * buffer_size


def copy_into_incoming(
    root: Path,
    source_fd: int,
    *,
    buffer_size: int,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
    sync: bool = True,
) -> Incoming:
    """Copy an open source file into ``<root>/.incoming`` in one pass, hashing as it goes.

    The source is read exactly once (:func:`write_hashed`); in every failure the
    partial temporary file is removed before the exception leaves. Without ``sync`` the
    copy is not fsynced: the caller does it (:func:`sync_file`) before a ledger row
    names it.
    """
    tmp = incoming_dir(root) / f"{owner_tag()}.part"
    hasher = blake3.blake3()  # one thread hashes several times faster than a disk writes
    # Advisory (a doubled read-ahead), and not on FUSE: a recorder mounted through
    # fusefat was read 4-6 times slower with it, for 4-6 times the daemon's CPU
    # (exfat-fuse twice as slow), where the kernel's own read-ahead found the
    # sequential reads anyway.
    if not on_fuse(source_fd):
        with contextlib.suppress(OSError):
            os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    size = write_hashed(
        source_fd, tmp, [hasher], buffer_size=buffer_size, stop=stop, progress=progress, sync=sync
    )
    return Incoming(path=tmp, size=size, blake3=hasher.hexdigest())


def hash_fd(source_fd: int, *, buffer_size: int, stop: threading.Event | None = None) -> str:
    """BLAKE3 of an open file, read once from its current position."""
    hasher = blake3.blake3()  # one thread hashes several times faster than a disk writes
    for chunk in chunks(source_fd, buffer_size, stop, "hashing"):
        hasher.update(chunk)
    return hasher.hexdigest()


def hash_stored(path: Path, *, buffer_size: int = 1 << 20, drop_cache: bool = True) -> str:
    """BLAKE3 of a stored file, read from the disk rather than the page cache the copy
    just filled (``drop_cache``).

    Read with ``O_DIRECT`` where the filesystem allows it; else its cached pages are
    dropped first (POSIX_FADV_DONTNEED, once the data is on disk) and it is read as
    usual. Without ``drop_cache`` it is read as usual.
    """
    if drop_cache:
        try:
            hasher = blake3.blake3()
            for chunk in read_direct(path, buffer_size):
                hasher.update(chunk)
            return hasher.hexdigest()
        except NoDirect:
            pass
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if drop_cache:
            with contextlib.suppress(OSError):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return hash_fd(fd, buffer_size=buffer_size)
    finally:
        os.close(fd)


def publish(
    root: Path,
    incoming: Incoming,
    rel: PurePosixPath,
    *,
    taken: Callable[[PurePosixPath], bool] | None = None,
    slots: MarkerSlots | None = None,
    sync: bool = True,
) -> PurePosixPath:
    """Give the temporary copy its final name; never replace an existing file.

    When the name is taken by a different recording (on disk, or by ``taken``: a
    ledger row whose file was since trashed or purged), the file is stored beside it
    as ``name~2.ext``, ``name~3.ext`` ... Returns the path actually used. The marker
    is written into a file of ``slots`` (an ingest's), else into a new one, and made
    durable before the link, always; the directory is fsynced after it unless ``sync``
    is False (the caller then does it, :func:`sync_dirs`, before a ledger row names it).
    """
    directory = makedirs(root, rel.parent)
    stem, dot, ext = rel.name.rpartition(".")
    if not dot:
        stem, ext = rel.name, ""
    os.chmod(incoming.path, FILE_MODE)
    identity = incoming.identity()
    for n in range(1, 10_000):
        name = rel.name if n == 1 else f"{stem}~{n}{'.' + ext if ext else ''}"
        target = directory / name
        if taken is not None and taken(rel.parent / name):
            continue
        if incoming.marker is None:
            incoming.slots = slots
            incoming.marker = new_slot(incoming.path.parent) if slots is None else slots.take()
        write_marker(incoming.marker, rel.parent / name, incoming.blake3, identity)
        try:
            os.link(incoming.path, target)  # fails with EEXIST: no silent overwrite
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            if target.exists() or target.is_symlink():
                continue
            os.rename(incoming.path, target)
        try:
            incoming.path.unlink(missing_ok=True)
            if sync:
                fsync_dir(directory)
        except BaseException:
            # Published but not durable: take it back, so no file is left without
            # either a ledger row or a marker that names it.
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        final = rel.parent / name
        if not _real(directory).is_relative_to(_real(root)):  # defence in depth
            os.unlink(target)
            raise ValueError(f"refusing to store outside the store root: {final}")
        return final
    raise FileExistsError(f"more than 9999 different files named {rel} in the store")


def _real(path: Path) -> Path:
    """``path`` with every link resolved. The file itself was just made by ``os.link``
    in its directory: where the directory really is says where the file is."""
    return Path(os.path.realpath(path))


def sync_file(path: Path) -> None:
    """fsync a file copied or published without ``sync``; its name is made durable by
    its directory's (:func:`sync_dirs`). Raises ``OSError`` as the disk gives it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def settle(incoming: Incoming) -> None:
    """The published file has its ledger row (or was unpublished): drop the marker."""
    marker, incoming.marker = incoming.marker, None
    if marker is None:
        return  # nothing was published
    if incoming.slots is None:
        marker.unlink(missing_ok=True)
        drop_slot(marker)
        return
    try:
        blank_marker(marker)
    except BaseException:
        drop_slot(marker)  # what it holds now is recovery's to judge
        raise
    incoming.slots.give_back(marker)


def abandon(incoming: Incoming) -> None:
    """Leave the marker for recovery (whether the row committed is not known here)."""
    marker, incoming.marker = incoming.marker, None
    if marker is not None:
        drop_slot(marker)


def unpublish(root: Path, rel: PurePosixPath) -> None:
    """Remove a just-published file whose ledger row could not be written.

    No chmod first: unlinking needs no write permission on the file, and the inode
    may be shared (a quarantine release links the copy the ledger still points at),
    so making it writable would make evidence writable.
    """
    path = root / rel
    try:
        path.unlink()
        fsync_dir(path.parent)
    except FileNotFoundError:
        pass


def in_flight(root: Path) -> set[PurePosixPath]:
    """Store paths that a live process has published and not yet committed to the ledger."""
    return {m.path for m in read_markers(root / INCOMING) if m.alive}


def recover_incoming(
    root: Path, recorded: Callable[[PurePosixPath, str], bool]
) -> tuple[list[Path], list[PurePosixPath]]:
    """Clean up after processes that died mid-ingest; returns (temporaries, orphans) removed.

    ``recorded(path, blake3)`` says whether the ledger has a row for that store path
    with that hash. A published file whose process died before its row was written
    is removed (only if its content is the one the marker names); the recorder still
    holds it and the next dock takes it again, under the same name, never as a twin.
    Files of live processes are left alone.
    """
    orphans: list[PurePosixPath] = []
    with recovery_lock(root):
        for m in read_markers(root / INCOMING):
            if m.alive or not m.file.exists():
                continue  # in use, or another recovery already dealt with it
            if not recorded(m.path, m.blake3) and _is_the_published_copy(root, m):
                unpublish(root, m.path)
                orphans.append(m.path)
            m.file.unlink(missing_ok=True)
        removed = remove_dead_temporaries(root / INCOMING)
    return removed, orphans


def _is_the_published_copy(root: Path, m: Marker) -> bool:
    """Is the file at the marker's path the very one its process published?

    By inode and mtime when the marker has them (another process may since have stored
    the same recording there anew), else by content. Not by device: the number a
    filesystem gets may change when it is mounted again (btrfs, NFS, LVM), and after a
    crash the file may be cut short (its data was not yet on the disk), so neither its
    content nor anything but its inode says it is the one to take back.
    """
    target = root / m.path
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if m.identity is not None:
        return (st.st_ino, st.st_mtime_ns) == m.identity[1:]
    try:
        return hash_stored(target, drop_cache=False) == m.blake3
    except OSError:
        return False


def clean_incoming(root: Path) -> list[Path]:
    """Remove temporary files of processes that are gone; returns what was removed.

    Published-but-unrecorded files need the ledger: see :func:`recover_incoming`.
    """
    return recover_incoming(root, lambda _p, _h: True)[0]


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
