"""Read files straight from a FAT12/16/32 filesystem when the mount cannot open them.

On a kernel without vfat the dock mounts FAT through ``fusefat``. fusefat 0.1a *lists*
a short (8.3) name written in a multi-byte code page (GBK, as a Chinese-locale
recorder writes them) but cannot look it up: ``stat``/``open`` fail with ENOENT. Such
a file is reached here instead, by its exact name bytes, from the block device behind
the mount (see :class:`dockd.ingest.discover.Fallback`).

Read-only: the device is opened ``O_RDONLY`` for each lookup and never written.
Nothing the card holds is trusted: every field of the boot sector, every cluster
number and every chain is checked (a chain that loops, leaves the data area, ends
early or runs through a free or bad cluster is an error that names the file, never a
hang or a wrong read). A name is matched byte for byte and must match exactly one
entry of its directory; when two entries could be meant, the file is not taken by
this way (it then stays a named, unreadable failure) rather than risk taking the
wrong one.

Why a reader of our own, not a library:

* mtools (``mcopy -i``) matches names case-insensitively and as wildcards, and takes
  ``\\`` as a separator: GBK trail bytes include ``a``-``z``, ``[``, ``]``, ``\\`` and
  ``|``, so two different GBK names that differ in the case of a trail byte are the
  same name to it (``mcopy`` of either one printed both files, concatenated), and a
  name with ``[`` is "not found". It also lowers names by the NT case flags, which
  fusefat ignores, so its names are not the ones the mount lists.
* pyfatfs follows a cluster chain without loop detection (a looping FAT on a hostile
  card hangs the dock), warns on every volume not cleanly unmounted (every recorder
  pulled without an eject), parses the whole FAT into a Python list on open, and
  reads file content through PyFilesystem2 (``fs``), which imports the deprecated
  ``pkg_resources`` at import time.

Here: the device (each read exact, or an error naming it), the FAT and its cluster
chains, the lookup of a path, and the extraction of a file. The bytes' format (boot
sector, directory entries, the names an entry goes by) is ``dockd.ingest.fatformat``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator

import structlog

from dockd.ingest import names
from dockd.ingest.discover import Fallback
from dockd.ingest.fatformat import (
    ENTRY,
    MAX_DIR_BYTES,
    Entry,
    Geometry,
    match_name,
    parse_boot_sector,
    parse_directory,
)
from dockd.ingest.identify import VolumeInfo

log = structlog.get_logger("dockd.ingest")

_COPY_CHUNK = 1 << 20
_FAT_CACHE_BLOCK = 64 * 1024


def _pread(fd: int, path: str, offset: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``offset``; OSError naming the device otherwise."""
    out = bytearray()
    while len(out) < size:
        at = offset + len(out)
        try:
            chunk = os.pread(fd, size - len(out), at)
        except OSError as exc:
            raise OSError(
                exc.errno or errno.EIO, f"cannot read {path} at byte {at}: {exc.strerror or exc}"
            ) from exc
        if not chunk:
            raise OSError(
                errno.EIO,
                f"{path} ends at byte {at}, inside its FAT filesystem "
                "(a damaged card, or a card reader that lost it)",
            )
        out += chunk
    return bytes(out)


def _damaged(what: str, path: str, problem: str) -> OSError:
    return OSError(
        errno.EIO,
        f"{what} on {path}: {problem} (a damaged FAT: check the card with fsck.vfat -n)",
    )


class _Device:
    """One read-only open of the volume, with the FAT read in cached blocks."""

    def __init__(self, fd: int, path: str, geo: Geometry) -> None:
        self.fd, self.path, self.geo = fd, path, geo
        self._fat: dict[int, bytes] = {}

    def read(self, offset: int, size: int) -> bytes:
        return _pread(self.fd, self.path, offset, size)

    def next_cluster(self, cluster: int) -> int:
        """The FAT's entry for ``cluster``."""
        bits = self.geo.fat_type
        at = cluster * bits // 8
        block = at - at % _FAT_CACHE_BLOCK
        if block not in self._fat:
            if len(self._fat) >= 64:
                self._fat.clear()
            # 4 bytes more: a FAT12 entry may straddle the edge of the block
            self._fat[block] = self.read(self.geo.fat_offset + block, _FAT_CACHE_BLOCK + 4)
        data, i = self._fat[block], at - block
        if bits == 32:
            return int.from_bytes(data[i : i + 4], "little") & 0x0FFFFFFF
        if bits == 16:
            return int.from_bytes(data[i : i + 2], "little")
        pair = int.from_bytes(data[i : i + 2], "little")
        return pair >> 4 if cluster & 1 else pair & 0x0FFF

    def chain(self, first: int, what: str, count: int | None = None) -> Iterator[int]:
        """The clusters of a chain, each checked; an error names ``what``.

        With ``count``: exactly that many (a file's), the chain must not end before.
        Without: up to the end-of-chain mark (a directory's, at most FAT's limit).
        """
        geo = self.geo
        limit = max(1, MAX_DIR_BYTES // geo.cluster_size) if count is None else count
        seen: set[int] = set()
        cluster = first
        while len(seen) < limit:
            if not 2 <= cluster <= geo.clusters + 1:
                if cluster >= geo.eoc:
                    if count is None and seen:
                        return
                    raise _damaged(
                        what, self.path, f"its clusters end after {len(seen)} of {limit}"
                    )
                problem = (
                    "a free cluster"
                    if cluster == 0
                    else "a bad cluster"
                    if cluster == geo.bad
                    else f"cluster {cluster}, outside the data area"
                )
                raise _damaged(what, self.path, f"its cluster chain runs into {problem}")
            if cluster in seen:
                raise _damaged(what, self.path, f"its cluster chain loops back to {cluster}")
            seen.add(cluster)
            yield cluster
            if count is None or len(seen) < count:
                cluster = self.next_cluster(cluster)
        if count is None and cluster < geo.eoc:
            raise _damaged(what, self.path, "a directory longer than FAT allows")

    def cluster_offset(self, cluster: int) -> int:
        return self.geo.data_offset + (cluster - 2) * self.geo.cluster_size

    def directory(self, cluster: int, what: str) -> list[Entry]:
        """The entries of the directory starting at ``cluster`` (0: the root)."""
        geo = self.geo
        if cluster == 0 and geo.fat_type != 32:
            return parse_directory(self.read(geo.root_offset, geo.root_size))
        data = bytearray()
        for c in self.chain(cluster or geo.root_cluster, what):
            data += self.read(self.cluster_offset(c), geo.cluster_size)
            if 0 in data[-geo.cluster_size :: ENTRY]:
                break  # its end mark: nothing after it counts
        return parse_directory(bytes(data))

    def lookup(self, rel: bytes) -> Entry | None:
        """The file (not directory) at ``rel``, or None."""
        parts = [p for p in rel.split(b"/") if p not in (b"", b".")]
        if not parts or b".." in parts:
            return None
        cluster = 0
        for depth, part in enumerate(parts):
            where = _show(b"/".join(parts[:depth])) or "the root"
            entry = match_name(self.directory(cluster, f"directory {where}"), part)
            if entry is None:
                return None
            if depth == len(parts) - 1:
                return None if entry.is_dir else entry
            if not entry.is_dir or entry.cluster == 0:
                return None
            cluster = entry.cluster
        return None


class FatReader:
    """Files of the FAT filesystem on ``path`` (a block device, or an image file), by name bytes.

    Satisfies :class:`dockd.ingest.discover.Fallback`. ``scratch`` is the directory
    where :meth:`open` extracts a file to give a seekable descriptor (default: the
    temporary directory, ``$TMPDIR``). Raises ``OSError`` when ``path`` cannot be read
    or holds no FAT filesystem. Each call opens ``path`` read-only anew and checks
    that it still holds the same filesystem (same geometry and volume ID).
    """

    def __init__(self, path: str | os.PathLike[str], *, scratch: str | None = None) -> None:
        self.path = os.fspath(path)
        self.scratch = scratch
        self.geometry: Geometry | None = None
        with self._opened() as dev:
            self.geometry = dev.geo

    @contextlib.contextmanager
    def _opened(self) -> Iterator[_Device]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise OSError(
                exc.errno or errno.EIO, f"cannot open {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            geo = parse_boot_sector(_pread(fd, self.path, 0, 512))
            if geo is None:
                raise OSError(errno.EINVAL, f"{self.path} does not hold a FAT filesystem")
            if self.geometry is not None and geo != self.geometry:
                raise OSError(
                    errno.ENODEV,
                    f"{self.path} no longer holds the FAT filesystem it held when the dock "
                    "began (was the card swapped?): dock it again",
                )
            yield _Device(fd, self.path, geo)
        finally:
            os.close(fd)

    def entry(self, rel: bytes) -> Entry | None:
        """The directory entry of the file at ``rel`` (None: no such file, or ambiguous)."""
        with self._opened() as dev:
            return dev.lookup(rel)

    def stat(self, rel: bytes) -> tuple[int, float] | None:
        """(size, mtime) of the file, or None when it is not there (or cannot be read)."""
        try:
            found = self.entry(rel)
        except OSError as exc:
            log.warning("FAT reader cannot look the file up", file=_show(rel), error=str(exc))
            return None
        return None if found is None else (found.size, found.mtime)

    def open(self, rel: bytes) -> int:
        """A seekable descriptor of the file's content (extracted into an unlinked file)."""
        with self._opened() as dev:
            found = dev.lookup(rel)
            if found is None:
                raise OSError(
                    errno.ENOENT, f"{_show(rel)} is not in the FAT filesystem on {self.path}"
                )
            return self._extract(dev, found, _show(rel))

    def _extract(self, dev: _Device, entry: Entry, what: str) -> int:
        size, csize = entry.size, dev.geo.cluster_size
        where = self.scratch or tempfile.gettempdir()
        with tempfile.TemporaryFile(dir=where) as tmp:
            out = tmp.fileno()
            left = size
            try:
                count = -(-size // csize)
                clusters = dev.chain(entry.cluster, what, count) if count else iter(())
                for first, run in _runs(clusters):
                    offset, todo = dev.cluster_offset(first), min(run * csize, left)
                    while todo:
                        n = min(todo, _COPY_CHUNK)
                        view = memoryview(dev.read(offset, n))
                        while view:
                            view = view[os.write(out, view) :]
                        offset, todo, left = offset + n, todo - n, left - n
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise OSError(
                        exc.errno,
                        f"no room in {where} to extract {what} ({size} bytes) from "
                        f"{self.path}: free space there, or point TMPDIR at a larger disk",
                    ) from exc
                raise
            fd = os.dup(out)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd


def _runs(clusters: Iterator[int]) -> Iterator[tuple[int, int]]:
    """Consecutive clusters as (first, count) runs, to read them in large pieces."""
    first, count = -1, 0
    for c in clusters:
        if count and c == first + count:
            count += 1
            continue
        if count:
            yield first, count
        first, count = c, 1
    if count:
        yield first, count


def _show(rel: bytes) -> str:
    return names.display(rel)


def for_volume(volume: VolumeInfo, *, scratch: str | None = None) -> Fallback | None:
    """A reader of the FAT filesystem on the volume's block device, or None.

    None when the volume has no device node, the node is not a block device, or it
    holds no FAT filesystem we can read.
    """
    dev = volume.devnode
    if not dev:
        return None
    try:
        if not stat.S_ISBLK(os.stat(dev).st_mode):
            return None
        return FatReader(dev, scratch=scratch)
    except OSError as exc:
        log.info("no FAT reader for this volume", device=dev, reason=str(exc))
        return None
