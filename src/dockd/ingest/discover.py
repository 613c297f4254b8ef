"""Discover the recordings on a recorder without trusting anything it holds.

Walks the tree without following symbolic links; a link, a device node, a FIFO
or a socket is refused with its reason (never opened: opening a FIFO would hang
the dock). Files whose extension is not a configured media type are ignored.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from dockd.config.ingest import IngestConfig
from dockd.ingest import names

_SPECIAL = (
    (stat.S_ISFIFO, "a FIFO (named pipe), not a recording: refused"),
    (stat.S_ISSOCK, "a socket, not a recording: refused"),
    (stat.S_ISCHR, "a character device node, not a recording: refused"),
    (stat.S_ISBLK, "a block device node, not a recording: refused"),
)


class Fallback(Protocol):
    """Another way to reach files the mounted filesystem lists but cannot open.

    (fusefat, the FAT driver of kernels without vfat, lists a GBK short name but
    cannot look it up: see ``ingest.fatreader``.) Paths are raw bytes relative to
    the recorder's root.
    """

    def stat(self, rel: bytes) -> tuple[int, float] | None:
        """(size, mtime) of the file, or None when this way cannot reach it either."""
        ...

    def open(self, rel: bytes) -> int:
        """A readable file descriptor of its content (may be a pipe: not seekable)."""
        ...


@dataclass(frozen=True)
class Candidate:
    """A regular media file on the recorder."""

    relpath: PurePosixPath  # as the OS gives it: undecodable bytes as surrogate escapes
    kind: str  # video | audio | photo
    size: int
    mtime: float
    # Set when the mount could not open this file and ``fallback`` reads it instead.
    fallback: Fallback | None = field(default=None, compare=False, repr=False)

    @property
    def raw(self) -> bytes:
        """The exact bytes of the path on the recorder."""
        return names.raw_of(self.relpath)

    @property
    def display(self) -> str:
        """The path as people read it (and as the ledger's ``source_path`` holds it)."""
        return names.display(self.raw)


@dataclass(frozen=True)
class Refusal:
    """Something on the recorder that was not taken, and why."""

    relpath: PurePosixPath
    reason: str
    # True when the recorder could not be read (not a policy decision): the file
    # counts as failed, raises a critical alert and blocks the wipe.
    unreadable: bool = False

    @property
    def display(self) -> str:
        return names.display(names.raw_of(self.relpath))


MAX_DEPTH = 64  # no recorder nests folders deeper; a corrupt directory may loop


def _walk(
    root: Path, cfg: IngestConfig, fallback: Fallback | None
) -> Iterator[Candidate | Refusal]:
    """Depth-first in name order, without recursion: a corrupt card whose directory
    points back at an ancestor, or absurd nesting, is refused, never a crash."""
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[PurePosixPath, Iterator[os.DirEntry[str]]]] = []

    def enter(rel: PurePosixPath, st: os.stat_result | None) -> Refusal | None:
        if st is not None:
            if (st.st_dev, st.st_ino) in seen:
                return Refusal(rel, "a directory that loops back on itself (corrupt card)")
            seen.add((st.st_dev, st.st_ino))
        if len(stack) >= MAX_DEPTH:
            return Refusal(
                rel, f"nested deeper than {MAX_DEPTH} folders: not read", unreadable=True
            )
        try:
            entries = sorted(os.scandir(root / rel), key=lambda e: e.name)
        except OSError as exc:
            return Refusal(
                rel, f"cannot list this directory: {exc.strerror or exc}", unreadable=True
            )
        stack.append((rel, iter(entries)))
        return None

    first = enter(PurePosixPath("."), None)
    if first is not None:
        yield first
    while stack:
        rel, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        child = rel / entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            kind = cfg.kind_of(PurePosixPath(entry.name).suffix)
            found = fallback.stat(os.fsencode(str(child))) if fallback and kind else None
            if kind is not None and found is not None:
                yield Candidate(child, kind, found[0], found[1], fallback)
                continue
            yield Refusal(
                child,
                f"listed on the recorder but cannot be read ({exc.strerror or exc}); it is "
                "still on the recorder: do not wipe it",
                unreadable=True,
            )
            continue
        if stat.S_ISLNK(st.st_mode):
            yield Refusal(
                child,
                "a symbolic link: links are never followed (could point "
                "outside the recorder); copy the real file onto it if needed",
            )
            continue
        if stat.S_ISDIR(st.st_mode):
            refused = enter(child, st)
            if refused is not None:
                yield refused
            continue
        special = next((why for test, why in _SPECIAL if test(st.st_mode)), None)
        if special is not None:
            yield Refusal(child, special)
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        kind = cfg.kind_of(PurePosixPath(entry.name).suffix)
        if kind is not None:
            yield Candidate(child, kind, st.st_size, st.st_mtime)


def discover(
    root: Path, cfg: IngestConfig, *, fallback: Fallback | None = None
) -> tuple[list[Candidate], list[Refusal]]:
    """All media files under ``root`` in a stable order, and everything refused.

    A file listed but not readable through the mount is asked of ``fallback``.
    """
    found: list[Candidate] = []
    refused: list[Refusal] = []
    for item in _walk(root, cfg, fallback):
        if isinstance(item, Candidate):
            found.append(item)
        else:
            refused.append(item)
    return found, refused
