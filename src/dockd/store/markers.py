"""Who owns what waits in ``.incoming/``: owner tags, publish markers, dead leftovers.

Every temporary file there is named ``<pid>-<random>`` after the process that
writes it (:func:`owner_tag`), so a later process can tell a live owner from a dead
one (:func:`owner_alive`: same boot, PID alive, and for this process's own markers,
not left by a failure). A publish marker (``<owner>.pub``) is JSON naming the store
path, the hash and the inode about to be published; :func:`read_markers` reads them
back as :class:`Marker`. Recovery of a store is serialised by :func:`recovery_lock`.
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

from dockd.runtime import BOOT_ID, FileLock, before_boot, pid_alive, runtime_dir

# Markers this process has written and not yet settled. A marker of this process's
# PID that is not here was left by a failure (the daemon lives on after one).
_OWN_MARKERS: set[str] = set()
_OWN_LOCK = threading.Lock()


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
        with _OWN_LOCK:
            return path.name in _OWN_MARKERS
    return pid_alive(int(head))


@dataclass(frozen=True)
class Marker:
    """A publish in progress (or cut short): which file, with which hash, by whom."""

    file: Path
    path: PurePosixPath
    blake3: str
    alive: bool
    identity: tuple[int, int, int] | None  # (device, inode, mtime ns) of the published file


def write_marker(
    marker: Path, rel: PurePosixPath, blake3: str, identity: tuple[int, int, int]
) -> None:
    """Write (fsynced, replaced whole) "about to publish ``rel``: this hash, this inode".

    The caller fsyncs the directory. Until :func:`forget_marker`, the marker counts
    as this process's live one.
    """
    body = json.dumps(
        {
            "path": rel.as_posix(),
            "blake3": blake3,
            "boot_id": BOOT_ID,
            "dev": identity[0],
            "ino": identity[1],
            "mtime_ns": identity[2],
        }
    ).encode()
    with _OWN_LOCK:
        _OWN_MARKERS.add(marker.name)
    tmp = marker.with_suffix(".pub-new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, marker)


def forget_marker(marker: Path) -> None:
    """This process no longer vouches for ``marker``: settled, or left for recovery."""
    with _OWN_LOCK:
        _OWN_MARKERS.discard(marker.name)


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
        out.append(Marker(path, rel, digest, owner_alive(path, boot_id=boot), ident))
    return out


def remove_dead_temporaries(incoming: Path) -> list[Path]:
    """Remove the ``.part`` and ``.pub-new`` files of processes that are gone.

    Another dock of this process (or another process) may publish meanwhile: a file
    listed here may be gone by the time it is looked at, which is no failure.
    """
    removed: list[Path] = []
    if incoming.is_dir():
        for entry in os.scandir(incoming):
            path = Path(entry.path)
            if not entry.name.endswith((".part", ".pub-new")) or owner_alive(path):
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
