"""The store of originals: path template, one-pass copy with hashing, atomic publish.

A file enters the store in three steps, and only the last one makes it visible:

1. ``copy_into_incoming`` streams the source once into ``<root>/.incoming/``,
   feeding every chunk to BLAKE3 as it is written, then fsyncs;
2. the caller probes the temporary copy and decides the final path;
3. ``publish`` links it to its final name without ever replacing an existing
   file, makes it read-only (0440), and fsyncs the directory.

Whatever fails in between, ``Incoming.discard`` removes the temporary file, so
the store never holds a half-file.

Between ``publish`` and the ledger commit a published file has no ledger row yet.
``publish`` therefore first writes a marker (``.incoming/<owner>.pub``, fsynced)
naming the path and hash; ``settle`` removes it once the row is committed (or the
file unpublished). A marker whose process is alive means "in flight" (the fixity
sweep does not call that file unexpected); one whose process is gone is a crash
between publish and commit, and ``recover_incoming`` removes the orphan (the
recorder still holds the file, and was never told it is safe), so the next ingest
never stores a twin. Temporary ``.part`` files of dead processes go the same way;
those of live processes (another dockd on this store) are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import stat
import threading
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import blake3

from dockd.runtime import BOOT_ID, FileLock, before_boot, pid_alive, runtime_dir

INCOMING = ".incoming"
FILE_MODE = 0o440
DIR_MODE = 0o750
MAX_NAME_BYTES = 200  # leaves room for a collision suffix within NAME_MAX (255)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


class Interrupted(Exception):
    """The copy was abandoned because a stop was requested (shutdown, unplug)."""


def safe_component(name: str, *, fallback: str = "unnamed") -> str:
    """One path component that cannot climb out of its directory.

    Keeps the name readable (Chinese names stay Chinese), replaces separators and
    control characters, strips leading dots (no hidden files, no ``..``) and
    trims to a byte length every filesystem accepts.
    """
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip()
    # No hidden files and no "..": leading dots become "_", so "..mp4" keeps its
    # extension as "_.mp4" instead of losing it.
    if set(name) <= {"."}:
        name = ""
    elif name.startswith("."):
        stem, _, ext = name.rpartition(".")
        # ".hidden.mp4" -> "_hidden.mp4"; "..mp4" -> "_.mp4"
        name = "_" + name.lstrip(".") if stem.strip(".") or not ext else "_." + ext
    if not name or set(name) <= {"."}:
        name = fallback
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep_ext = f".{ext}" if dot and len(ext) <= 8 else ""
        body = (stem if keep_ext else name).encode("utf-8")
        budget = MAX_NAME_BYTES - len(keep_ext.encode("utf-8"))
        name = body[:budget].decode("utf-8", "ignore") + keep_ext
    return name


def render_path(
    template: str,
    *,
    local_time: datetime,
    device: str,
    badge: str | None,
    station: str,
    source_name: str,
    kind: str,
) -> PurePosixPath:
    """The store-relative path of a recording, from the configured template.

    ``local_time`` must already be in the station's time zone: the day folders
    follow the station's calendar (R4).
    """
    name = safe_component(source_name)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    values = {
        "year": f"{local_time.year:04d}",
        "month": f"{local_time.month:02d}",
        "day": f"{local_time.day:02d}",
        "hour": f"{local_time.hour:02d}",
        "minute": f"{local_time.minute:02d}",
        "second": f"{local_time.second:02d}",
        "device": safe_component(device, fallback="unknown-device"),
        "badge": safe_component(badge or "unknown", fallback="unknown"),
        "station": safe_component(station),
        "stem": stem,
        "ext": f".{ext}" if ext else "",
        "name": name,
        "kind": kind,
    }
    rendered = template.format(**values)
    parts = [p for p in rendered.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        raise ValueError(f"path template produced an unsafe path {rendered!r}")
    return PurePosixPath(*parts)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(root: Path, rel: PurePosixPath) -> Path:
    """Create the directories of ``rel`` under ``root`` (mode 0750); fsync each new parent.

    A directory that turns out to be a link or a file is refused: nothing is ever
    written outside the tree through a planted link.
    """
    current = root
    for part in rel.parts:
        nxt = current / part
        try:
            nxt.mkdir(mode=DIR_MODE)
            fsync_dir(current)
        except FileExistsError:
            if nxt.is_symlink() or not nxt.is_dir():
                raise NotADirectoryError(
                    f"{nxt} exists in the store and is not a directory"
                ) from None
        current = nxt
    return current


def _owner_tag() -> str:
    """``<pid>-<random>``: names each temporary file after the process that owns it."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


# Markers this process has written and not yet settled. A marker of this process's
# PID that is not here was left by a failure (the daemon lives on after one).
_OWN_MARKERS: set[str] = set()
_OWN_LOCK = threading.Lock()


def _owner_alive(path: Path, *, boot_id: str | None = None) -> bool:
    """Is the process that owns this ``<pid>-...`` file still running (and using it)?"""
    if boot_id is not None and boot_id != BOOT_ID:
        return False  # written before the last reboot
    try:
        if before_boot(path.lstat().st_mtime):
            return False  # a PID of the last boot may now name another process
    except FileNotFoundError:
        return False
    head = path.name.split("-", 1)[0]
    if not head.isdigit():
        return False  # a name of an older dockd: no owner to ask
    if int(head) == os.getpid() and path.suffix == ".pub":
        with _OWN_LOCK:
            return path.name in _OWN_MARKERS
    return pid_alive(int(head))


@dataclass
class Incoming:
    """A fully written, fsynced temporary copy inside the store, not yet published."""

    path: Path
    size: int
    blake3: str

    @property
    def marker(self) -> Path:
        """Where ``publish`` records the path it is about to publish (see module doc)."""
        return self.path.with_suffix(".pub")

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def identity(self) -> tuple[int, int, int]:
        """(device, inode, mtime in ns) of the copy: a published link of it has the same,
        and a later copy that happens to get the freed inode number back does not."""
        st = self.path.stat()
        return st.st_dev, st.st_ino, st.st_mtime_ns


ProgressFn = Callable[[int], None]


def incoming_dir(root: Path) -> Path:
    """``<root>/.incoming``, created if needed: where copies wait to be published."""
    incoming = root / INCOMING
    incoming.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return incoming


def copy_into_incoming(
    root: Path,
    source_fd: int,
    *,
    buffer_size: int,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
) -> Incoming:
    """Copy an open source file into ``<root>/.incoming`` in one pass, hashing as it goes.

    The source is read exactly once. Raises :class:`Interrupted` if ``stop`` is set
    mid-copy, ``OSError`` on a read or write error; in every failure the partial
    temporary file is removed before the exception leaves.
    """
    tmp = incoming_dir(root) / f"{_owner_tag()}.part"
    hasher = blake3.blake3()  # one thread hashes several times faster than a disk writes
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    size = 0
    with contextlib.suppress(OSError):  # advisory only; FUSE filesystems may refuse it
        os.posix_fadvise(source_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            while True:
                if stop is not None and stop.is_set():
                    raise Interrupted("stop requested during copy")
                n = os.readv(source_fd, [view])
                if n == 0:
                    break
                chunk = view[:n]
                hasher.update(chunk)
                written = 0
                while written < n:
                    written += os.write(out, chunk[written:])
                size += n
                if progress is not None:
                    progress(n)
            os.fsync(out)
        finally:
            os.close(out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return Incoming(path=tmp, size=size, blake3=hasher.hexdigest())


def hash_fd(source_fd: int, *, buffer_size: int, stop: threading.Event | None = None) -> str:
    """BLAKE3 of an open file, read once from its current position."""
    hasher = blake3.blake3()  # one thread hashes several times faster than a disk writes
    buf = bytearray(buffer_size)
    view = memoryview(buf)
    while True:
        if stop is not None and stop.is_set():
            raise Interrupted("stop requested during hashing")
        n = os.readv(source_fd, [view])
        if n == 0:
            return hasher.hexdigest()
        hasher.update(view[:n])


def hash_stored(path: Path, *, buffer_size: int = 1 << 20, drop_cache: bool = True) -> str:
    """BLAKE3 of a stored file, asking the kernel to drop its cached pages first.

    ``drop_cache`` makes the re-read come from the disk rather than the page cache
    the copy just filled (POSIX_FADV_DONTNEED after the data is on disk).
    """
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
) -> PurePosixPath:
    """Give the temporary copy its final name; never replace an existing file.

    When the name is taken by a different recording (on disk, or by ``taken``: a
    ledger row whose file was since trashed or purged), the file is stored beside it
    as ``name~2.ext``, ``name~3.ext`` ... Returns the path actually used.
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
        _write_marker(incoming, rel.parent / name, identity)
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
            fsync_dir(directory)
        except BaseException:
            # Published but not durable: take it back, so no file is left without
            # either a ledger row or a marker that names it.
            with contextlib.suppress(OSError):
                os.unlink(target)
            raise
        final = rel.parent / name
        resolved = (root / final).resolve()
        if not resolved.is_relative_to(root.resolve()):  # defence in depth
            os.unlink(target)
            raise ValueError(f"refusing to store outside the store root: {final}")
        return final
    raise FileExistsError(f"more than 9999 different files named {rel} in the store")


def _write_marker(incoming: Incoming, rel: PurePosixPath, identity: tuple[int, int, int]) -> None:
    """Durably note "about to publish ``rel``: this hash, this inode" before the link."""
    body = json.dumps(
        {
            "path": rel.as_posix(),
            "blake3": incoming.blake3,
            "boot_id": BOOT_ID,
            "dev": identity[0],
            "ino": identity[1],
            "mtime_ns": identity[2],
        }
    ).encode()
    with _OWN_LOCK:
        _OWN_MARKERS.add(incoming.marker.name)
    tmp = incoming.marker.with_suffix(".pub-new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, incoming.marker)
    fsync_dir(incoming.marker.parent)


def settle(incoming: Incoming) -> None:
    """The published file has its ledger row (or was unpublished): drop the marker."""
    with contextlib.suppress(FileNotFoundError):
        incoming.marker.unlink()
    with _OWN_LOCK:
        _OWN_MARKERS.discard(incoming.marker.name)


def abandon(incoming: Incoming) -> None:
    """Leave the marker for recovery (whether the row committed is not known here)."""
    with _OWN_LOCK:
        _OWN_MARKERS.discard(incoming.marker.name)


def unpublish(root: Path, rel: PurePosixPath) -> None:
    """Remove a just-published file whose ledger row could not be written."""
    path = root / rel
    try:
        os.chmod(path, 0o600)
        path.unlink()
        fsync_dir(path.parent)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class Marker:
    """A publish in progress (or cut short): which file, with which hash, by whom."""

    file: Path
    path: PurePosixPath
    blake3: str
    alive: bool
    identity: tuple[int, int, int] | None  # (device, inode, mtime ns) of the published file


def _markers(root: Path) -> list[Marker]:
    incoming = root / INCOMING
    out: list[Marker] = []
    try:
        entries = list(os.scandir(incoming))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.name.endswith(".pub"):
            continue
        try:
            data = json.loads(Path(entry.path).read_bytes())
            rel, digest, boot = PurePosixPath(data["path"]), str(data["blake3"]), data["boot_id"]
            ident = (
                (int(data["dev"]), int(data["ino"]), int(data["mtime_ns"]))
                if "mtime_ns" in data
                else None
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        path = Path(entry.path)
        out.append(Marker(path, rel, digest, _owner_alive(path, boot_id=boot), ident))
    return out


def in_flight(root: Path) -> set[PurePosixPath]:
    """Store paths that a live process has published and not yet committed to the ledger."""
    return {m.path for m in _markers(root) if m.alive}


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
    removed: list[Path] = []
    orphans: list[PurePosixPath] = []
    with _recovery_lock(root):
        for m in _markers(root):
            if m.alive or not m.file.exists():
                continue  # in use, or another recovery already dealt with it
            if not recorded(m.path, m.blake3) and _is_the_published_copy(root, m):
                unpublish(root, m.path)
                orphans.append(m.path)
            m.file.unlink(missing_ok=True)
        removed = _remove_dead_temporaries(root)
    return removed, orphans


def _is_the_published_copy(root: Path, m: Marker) -> bool:
    """Is the file at the marker's path the very one its process published?

    By inode when the marker has it (another process may since have stored the same
    recording there anew), else by content.
    """
    target = root / m.path
    try:
        st = target.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if m.identity is not None:
        return (st.st_dev, st.st_ino, st.st_mtime_ns) == m.identity
    try:
        return hash_stored(target, drop_cache=False) == m.blake3
    except OSError:
        return False


@contextlib.contextmanager
def _recovery_lock(root: Path) -> Iterator[None]:
    """One recovery of a store at a time (two docks starting together both recover)."""
    lock = FileLock(runtime_dir() / f"recover-{_digest(str(root.resolve()))}.lock")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _remove_dead_temporaries(root: Path) -> list[Path]:
    removed: list[Path] = []
    incoming = root / INCOMING
    if incoming.is_dir():
        for entry in os.scandir(incoming):
            path = Path(entry.path)
            if not entry.name.endswith((".part", ".pub-new")) or _owner_alive(path):
                continue
            if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def clean_incoming(root: Path) -> list[Path]:
    """Remove temporary files of processes that are gone; returns what was removed.

    Published-but-unrecorded files need the ledger: see :func:`recover_incoming`.
    """
    return recover_incoming(root, lambda _p, _h: True)[0]


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
