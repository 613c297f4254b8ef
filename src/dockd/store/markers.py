"""Who owns what waits in ``.incoming/``: owner tags, publish markers, dead leftovers.

Every temporary file there is named ``<pid>-<random>`` after the process that
writes it (:func:`owner_tag`), so a later process can tell a live owner from a dead
one (:func:`owner_alive`: same boot, PID alive, and for this process's own markers,
not left by a failure). A publish marker (``<owner>.pub``) is JSON naming the store
path, the hash and the inode about to be published; :func:`read_markers` reads them
back as :class:`Marker`. Recovery of a store is serialised by :func:`recovery_lock`.

A marker must be on disk before the file it names is published, which costs a new
file two fsyncs (its own, its directory's). A marker is therefore written in place
into a file that already exists, padded to its size, with one ``fdatasync``: a
:class:`MarkerSlots` makes such files (blank, made durable once) for one ingest and
hands them out again once their file is settled; a settled marker is blanked. Each
marker carries a checksum of itself, so a write cut short by a crash reads as no
marker, never as another one; recovery removes such leftovers of dead processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dockd.runtime import BOOT_ID, FileLock, before_boot, pid_alive, runtime_dir

# Markers this process has written and not yet settled. A marker of this process's
# PID that is not here was left by a failure (the daemon lives on after one).
_OWN_MARKERS: set[str] = set()
# Marker files this process made and still hands out (blank, or in _OWN_MARKERS).
_OWN_SLOTS: set[str] = set()
_OWN_LOCK = threading.Lock()
# A marker file's least size: one block, rewritten in place.
MARKER_BYTES = 4096


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def owner_tag() -> str:
    """``<pid>-<random>``: names each temporary file after the process that owns it."""
    return f"{os.getpid()}-{uuid.uuid4().hex}"


def owner_alive(path: Path, *, boot_id: str | None = None) -> bool:
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
        with _OWN_LOCK:  # a marker file kept for reuse is in use too: the next may be in it
            return path.name in _OWN_MARKERS or path.name in _OWN_SLOTS
    return pid_alive(int(head))


@dataclass(frozen=True)
class Marker:
    """A publish in progress (or cut short): which file, with which hash, by whom."""

    file: Path
    path: PurePosixPath
    blake3: str
    alive: bool
    identity: tuple[int, int, int] | None  # (device, inode, mtime ns) of the published file


def new_slot(incoming: Path) -> Path:
    """A blank marker file of this process in ``incoming``, durable with its name."""
    slot = incoming / f"{owner_tag()}.pub"
    with _OWN_LOCK:  # before it exists: a recovery beside must never take it for a leftover
        _OWN_SLOTS.add(slot.name)
    try:
        fd = os.open(slot, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b" " * MARKER_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(incoming)
    except BaseException:  # a full or failing store: no half-made file left as ours
        with contextlib.suppress(OSError):
            slot.unlink(missing_ok=True)
        drop_slot(slot)
        raise
    return slot


class MarkerSlots:
    """The marker files of one ingest: made when more files are in flight than ever
    before in it, handed out again once settled, removed by :meth:`close`."""

    def __init__(self, incoming: Path) -> None:
        self._incoming = incoming
        self._free: list[Path] = []
        self._lock = threading.Lock()

    def take(self) -> Path:
        with self._lock:
            if self._free:
                return self._free.pop()
        return new_slot(self._incoming)

    def give_back(self, slot: Path) -> None:
        """The marker was settled (and blanked): the file may carry the next one."""
        with self._lock:
            self._free.append(slot)

    def close(self) -> None:
        """Remove the blank files (a crash before leaves them to the next recovery)."""
        with self._lock:
            free, self._free = self._free, []
        for slot in free:
            with _OWN_LOCK:
                _OWN_SLOTS.discard(slot.name)
            slot.unlink(missing_ok=True)


def write_marker(
    marker: Path, rel: PurePosixPath, blake3: str, identity: tuple[int, int, int]
) -> None:
    """Write "about to publish ``rel``: this hash, this inode" into the marker file
    ``marker`` (:func:`new_slot`), in place, and make it durable (``fdatasync``).

    Until :func:`forget_marker`, the marker counts as this process's live one.
    """
    fields = {
        "path": rel.as_posix(),
        "blake3": blake3,
        "boot_id": BOOT_ID,
        "dev": identity[0],
        "ino": identity[1],
        "mtime_ns": identity[2],
    }
    body = json.dumps({**fields, "sum": _checksum(fields)}).encode()
    with _OWN_LOCK:
        _OWN_MARKERS.add(marker.name)
    _overwrite(marker, body, sync=True)


def blank_marker(marker: Path) -> None:
    """The marker's file is settled: blank it (not synced: if a crash brings the
    settled marker back, recovery finds its row, or its file gone, and drops it)."""
    _overwrite(marker, b"", sync=False)
    forget_marker(marker)


def _overwrite(marker: Path, body: bytes, *, sync: bool) -> None:
    """``body`` at the start of ``marker``, the rest of the file blanked: never shorter,
    so that nothing but the data has to reach the disk."""
    fd = os.open(marker, os.O_WRONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        data = body.ljust(max(size, MARKER_BYTES), b" ")
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], written)
        if sync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _checksum(fields: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def forget_marker(marker: Path) -> None:
    """This process no longer vouches for ``marker``: settled, or left for recovery."""
    with _OWN_LOCK:
        _OWN_MARKERS.discard(marker.name)


def drop_slot(marker: Path) -> None:
    """The marker is left for recovery: its file is no longer this process's to reuse."""
    forget_marker(marker)
    with _OWN_LOCK:
        _OWN_SLOTS.discard(marker.name)


def read_markers(incoming: Path) -> list[Marker]:
    """The readable publish markers in the ``incoming`` directory (none if it is missing)."""
    out: list[Marker] = []
    try:
        entries = list(os.scandir(incoming))
    except FileNotFoundError:
        return out
    for entry in entries:
        if not entry.name.endswith(".pub"):
            continue
        data = _parse(Path(entry.path))
        if data is None:
            continue
        try:
            rel, digest, boot = PurePosixPath(data["path"]), str(data["blake3"]), data["boot_id"]
            ident = (
                (int(data["dev"]), int(data["ino"]), int(data["mtime_ns"]))
                if "mtime_ns" in data
                else None
            )
        except (ValueError, KeyError, TypeError):
            continue
        path = Path(entry.path)
        out.append(Marker(path, rel, digest, owner_alive(path, boot_id=boot), ident))
    return out


def _parse(path: Path) -> dict[str, Any] | None:
    """A marker's fields; None for a blank file, one cut short, or not a marker."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if "sum" in data and data.pop("sum") != _checksum(data):
        return None  # written in part when its process died
    return data


def remove_dead_temporaries(incoming: Path) -> list[Path]:
    """Remove the ``.part`` and ``.pub-new`` files of processes that are gone, and
    their marker files that hold no marker (blank, or cut short): a readable marker is
    recovery's to judge (``store.recover_incoming``).

    Another dock of this process (or another process) may publish meanwhile: a file
    listed here may be gone by the time it is looked at, which is no failure.
    """
    removed: list[Path] = []
    if incoming.is_dir():
        for entry in os.scandir(incoming):
            path = Path(entry.path)
            if entry.name.endswith(".pub"):
                if owner_alive(path) or _parse(path) is not None:
                    continue
            elif not entry.name.endswith((".part", ".pub-new")) or owner_alive(path):
                continue
            try:
                regular = stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:
                continue  # published or renamed since the listing: its owner is alive
            if regular:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def recovery_lock(root: Path) -> Iterator[None]:
    """One recovery of a store at a time (two docks starting together both recover)."""
    lock = FileLock(runtime_dir() / f"recover-{_digest(str(root.resolve()))}.lock")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]
