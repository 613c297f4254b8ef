"""Where a file row's bytes are: store, quarantine, trash; and the small file-system moves.

Rows of unregistered recorders and of device conflicts (``Recording.in_quarantine``)
live under the quarantine root, every other row under the store root; ``store_path``
is relative to that root.
In the trash a file keeps its relative path (quarantined ones under ``quarantine/``,
which cannot clash with the store's ``YYYY/...`` paths).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

from dockd import store
from dockd.config import Config
from dockd.errors import DockdError
from dockd.ledger.models import Recording
from dockd.store.paths import safe_component

QUARANTINE_PREFIX = "quarantine"


def root_of(config: Config, row: Recording) -> Path:
    return config.store.quarantine_root if row.in_quarantine else config.store.root


def stored_path(config: Config, row: Recording) -> Path:
    return root_of(config, row) / row.store_path


def trash_root(config: Config) -> Path:
    return config.retention.trash or config.store.root.parent / "trash"


def trashed_path(config: Config, row: Recording) -> Path:
    """Where a trashed file is: its ``trash_path`` is relative to the trash root."""
    return trash_root(config) / (row.trash_path or rel_path(row).as_posix())


def rel_path(row: Recording) -> PurePosixPath:
    """The file's path in the trash and in archive batches (quarantined ones prefixed)."""
    rel = PurePosixPath(row.store_path)
    return PurePosixPath(QUARANTINE_PREFIX) / rel if row.in_quarantine else rel


fsync_dir = store.fsync_dir
fsync_dirs = store.sync_dirs
makedirs = store.makedirs


def prune_emptied(root: Path, directory: Path, *, unsynced: set[Path] | None = None) -> None:
    """Remove ``directory`` and its parents below ``root`` while they are empty.

    Called right after removing a file from ``directory``: only directories that
    removal emptied go, and never ``root`` itself. The directory left holding them is
    fsynced, or added to ``unsynced`` for a caller that fsyncs many once each.
    """
    root = root.resolve()
    current = directory.resolve()
    while current != root and current.is_relative_to(root):
        try:
            current.rmdir()
        except OSError:  # not empty (or gone): stop here
            return
        current = current.parent
    if unsynced is not None:
        unsynced.add(current)
        return
    with contextlib.suppress(OSError):
        fsync_dir(current)


def check_trash(config: Config) -> Path:
    """The trash root, created if needed; refuse one that cannot take a rename."""
    root = trash_root(config)
    store_root = config.store.root
    r, s = root.resolve(), store_root.resolve()
    if r == s or r.is_relative_to(s) or s.is_relative_to(r):
        raise DockdError(
            f"the trash {root} and the store {store_root} must not contain each other; "
            "set [retention] trash to a sibling of the store, e.g. <store>/../trash"
        )
    root.mkdir(mode=store.DIR_MODE, parents=True, exist_ok=True)
    if os.stat(root).st_dev != os.stat(store_root).st_dev:
        raise DockdError(
            f"the trash {root} is not on the same filesystem as the store {store_root}: files "
            "are moved there by rename; set [retention] trash to a directory on the store's disk"
        )
    return root


def unique_target(path: Path, file_id: int) -> Path:
    """``path``, or ``name~<file id>.ext`` beside it when that name is taken."""
    if not (path.exists() or path.is_symlink()):
        return path
    stem, dot, ext = path.name.rpartition(".")
    if not dot:
        stem, ext = path.name, ""
    alt = path.with_name(f"{stem}~{file_id}{'.' + ext if ext else ''}")
    if alt.exists() or alt.is_symlink():
        raise FileExistsError(f"both {path} and {alt} exist")
    return alt


def already_in_trash(trash: Path, row: Recording) -> Path | None:
    """Where a sweep that stopped between its moves and its commit left this file: at
    its place in the trash (or its ``~<id>`` twin), same size and same BLAKE3 as its
    row. None if it is not there; then the file is really missing from the store."""
    path = trash / rel_path(row)
    stem, dot, ext = path.name.rpartition(".")
    twin = path.with_name(f"{stem}~{row.id}.{ext}" if dot else f"{path.name}~{row.id}")
    for candidate in (path, twin):
        with contextlib.suppress(OSError):
            same_size = os.lstat(candidate).st_size == row.size_bytes
            if same_size and store.hash_stored(candidate, drop_cache=False) == row.blake3:
                return candidate
    return None


def by_case_root(config: Config) -> Path:
    """The per-case view of hard links beside the store (see :mod:`dockd.evidence.bycase`)."""
    configured = getattr(config.reports, "by_case_root", None)
    return Path(configured) if configured else config.store.root.parent / "by-case"


def drop_case_links(config: Config, row: Recording, path: Path) -> int:
    """Remove the per-case view's hard links to the file now at ``path``.

    A hard link is the same inode: left alone it would keep a trashed or purged
    recording's bytes alive. Only links that are this very inode are removed.
    """
    if not row.case_number:
        return 0
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if st.st_nlink <= 1:
        return 0
    root = by_case_root(config)
    day = row.recorded_start.astimezone(config.station.tz)
    folder = (
        root
        / safe_component(row.case_number, fallback="case")
        / f"{day.year:04d}"
        / f"{day.month:02d}"
        / f"{day.day:02d}"
    )
    name = PurePosixPath(row.store_path).name
    stem, dot, ext = name.rpartition(".")
    alt = f"{stem}~{row.id}.{ext}" if dot else f"{name}~{row.id}"
    removed = 0
    for candidate in (folder / name, folder / alt):
        try:
            cst = os.lstat(candidate)
        except OSError:
            continue
        if (cst.st_dev, cst.st_ino) == (st.st_dev, st.st_ino):
            candidate.unlink()
            removed += 1
    if removed:
        prune_emptied(root, folder)
    return removed
