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

FAT times are local wall-clock times without a zone: they are read in the process's
local time zone, as the kernel's vfat and mtools read them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from dockd.ingest import names
from dockd.ingest.discover import Fallback
from dockd.ingest.identify import VolumeInfo

log = structlog.get_logger("dockd.ingest")

_ENTRY = 32
_ATTR_VOLUME = 0x08
_ATTR_DIRECTORY = 0x10
_ATTR_LONG_NAME = 0x0F
_LAST_LONG_ENTRY = 0x40
_NT_LOWER_BASE = 0x08
_NT_LOWER_EXT = 0x10
_DELETED = 0xE5
_KANJI_E5 = 0x05  # a first name byte of 0xE5 is stored as 0x05 (0xE5 marks a deleted entry)
_MAX_DIR_BYTES = 65536 * _ENTRY  # FAT allows at most 65536 entries in a directory
_COPY_CHUNK = 1 << 20
_FAT_CACHE_BLOCK = 64 * 1024
# Name units of a long-name entry: offsets of its three pieces (5, 6 and 2 UTF-16 units).
_LFN_PIECES = ((1, 11), (14, 26), (28, 32))
_DOT_NAMES = (b".          ", b"..         ")


@dataclass(frozen=True)
class Geometry:
    """Where things are on a FAT volume, from its boot sector (all offsets in bytes)."""

    fat_type: int  # 12, 16 or 32
    cluster_size: int
    fat_offset: int  # of the FAT in use
    data_offset: int  # of cluster 2
    clusters: int  # data clusters, numbered 2 .. clusters + 1
    root_cluster: int  # FAT32: first cluster of the root directory; else 0
    root_offset: int  # FAT12/16: the fixed root directory region; else 0
    root_size: int
    volume_id: int

    @property
    def eoc(self) -> int:
        return {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.fat_type]

    @property
    def bad(self) -> int:
        return {12: 0xFF7, 16: 0xFFF7, 32: 0x0FFFFFF7}[self.fat_type]


def parse_boot_sector(bs: bytes) -> Geometry | None:
    """The geometry of a FAT12/16/32 boot sector, or None when it is not one.

    Checks what Linux's FAT driver checks (sector size, cluster size, reserved
    sectors, FAT count, media byte) and that the FAT can describe every cluster.
    """
    if len(bs) < 512:
        return None
    (sector, per_cluster, reserved, nfats, root_entries, total16, media, fat16) = (
        struct.unpack_from("<HBHBHHBH", bs, 11)
    )
    (total32, fat32, ext_flags) = struct.unpack_from("<IIH", bs, 32)
    root_cluster = struct.unpack_from("<I", bs, 44)[0]
    if sector not in (512, 1024, 2048, 4096):
        return None
    if per_cluster == 0 or per_cluster & (per_cluster - 1) or per_cluster * sector > 256 * 1024:
        return None
    if reserved == 0 or nfats == 0 or not (media == 0xF0 or media >= 0xF8):
        return None
    fat_sectors = fat16 or fat32
    total = total16 or total32
    if fat_sectors == 0 or total == 0:
        return None
    root_sectors = (root_entries * _ENTRY + sector - 1) // sector
    meta = reserved + nfats * fat_sectors + root_sectors
    if total <= meta:
        return None
    clusters = (total - meta) // per_cluster
    if clusters == 0:
        return None
    fat_type = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    if fat_type == 32:
        if fat16 != 0 or root_entries != 0 or not 2 <= root_cluster <= clusters + 1:
            return None
        active = ext_flags & 0x0F if ext_flags & 0x80 else 0
        if active >= nfats:
            return None
        volume_id = struct.unpack_from("<I", bs, 0x43)[0]
    else:
        if root_entries == 0:
            return None
        active, root_cluster = 0, 0
        volume_id = struct.unpack_from("<I", bs, 0x27)[0]
    if fat_sectors * sector * 8 < (clusters + 2) * fat_type:
        return None  # the FAT is too small to describe every cluster
    return Geometry(
        fat_type=fat_type,
        cluster_size=per_cluster * sector,
        fat_offset=(reserved + active * fat_sectors) * sector,
        data_offset=meta * sector,
        clusters=clusters,
        root_cluster=root_cluster,
        root_offset=0 if fat_type == 32 else (reserved + nfats * fat_sectors) * sector,
        root_size=0 if fat_type == 32 else root_entries * _ENTRY,
        volume_id=volume_id,
    )


@dataclass(frozen=True)
class Entry:
    """One file or directory of a FAT directory."""

    short: bytes  # the 11 bytes of the 8.3 name, as stored
    nt_case: int  # DIR_NTRes: bit 3 base in lower case, bit 4 extension in lower case
    long: bytes | None  # the long name as UTF-16-LE units, when a valid one precedes it
    attr: int
    cluster: int
    size: int
    wdate: int
    wtime: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attr & _ATTR_DIRECTORY)

    def names(self) -> tuple[set[bytes], set[bytes]]:
        """(exact, derived): the names it is known by, and other ways a driver may list it.

        Exact: the 8.3 name (a stored first byte 0x05 read as 0xE5) and the long name
        in UTF-8. Derived: the 8.3 name with its first byte as stored (fusefat lists
        0x05), with the NT lower-case flags applied, and a long name holding unpaired
        surrogates in UTF-8 as is.
        """
        base, ext = self.short[:8].rstrip(b" "), self.short[8:].rstrip(b" ")
        stored = _join(base, ext)
        exact = {_unkanji(stored)}
        derived = {stored}
        if self.nt_case & (_NT_LOWER_BASE | _NT_LOWER_EXT):
            lowered = _join(
                base.lower() if self.nt_case & _NT_LOWER_BASE else base,
                ext.lower() if self.nt_case & _NT_LOWER_EXT else ext,
            )
            derived |= {lowered, _unkanji(lowered)}
        if self.long is not None:
            try:
                exact.add(self.long.decode("utf-16-le").encode("utf-8"))
            except UnicodeError:
                text = self.long.decode("utf-16-le", "surrogatepass")
                derived.add(text.encode("utf-8", "surrogatepass"))
        return exact, derived - exact

    @property
    def mtime(self) -> float:
        """Last write time as POSIX seconds (FAT's local time; the DOS epoch if invalid)."""
        d, t = self.wdate, self.wtime
        fields = (1980 + (d >> 9), (d >> 5) & 0x0F, d & 0x1F, t >> 11, (t >> 5) & 0x3F)
        year, month, day, hour, minute = fields
        second = (t & 0x1F) * 2
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
            year, month, day, hour, minute, second = 1980, 1, 1, 0, 0, 0
        return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def _join(base: bytes, ext: bytes) -> bytes:
    return base + b"." + ext if ext else base


def _unkanji(name: bytes) -> bytes:
    return bytes([_DELETED]) + name[1:] if name[:1] == bytes([_KANJI_E5]) else name


def _checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) | (total >> 1)) + byte & 0xFF
    return total


def parse_directory(data: bytes) -> list[Entry]:
    """The entries of one directory's bytes (no ``.``, ``..``, deleted entries or label).

    A long name is kept only when its pieces are complete, in order and carry the
    checksum of the 8.3 entry that follows them; otherwise the 8.3 name alone counts,
    as every FAT driver does.
    """
    entries: list[Entry] = []
    pieces: list[bytes] = []
    expect = 0  # sequence number of the next long-name piece, 0: none pending
    check = -1
    for at in range(0, len(data) - _ENTRY + 1, _ENTRY):
        raw = data[at : at + _ENTRY]
        first, attr = raw[0], raw[11]
        if first == 0:
            break
        if first == _DELETED:
            pieces, expect = [], 0
            continue
        if attr & 0x3F == _ATTR_LONG_NAME:
            seq = first & 0x1F
            if first & _LAST_LONG_ENTRY and seq:
                pieces, expect, check = [], seq, raw[13]
            if expect and seq == expect and raw[13] == check:
                pieces.append(b"".join(raw[a:b] for a, b in _LFN_PIECES))
                expect -= 1
            else:
                pieces, expect = [], 0
            continue
        short = bytes(raw[:11])
        long = None
        if pieces and expect == 0 and _checksum(short) == check:
            units = b"".join(reversed(pieces))
            ends = [i for i in range(0, len(units), 2) if units[i : i + 2] == b"\0\0"]
            long = units[: ends[0]] if ends else units
            long = long or None
        pieces, expect = [], 0
        if attr & _ATTR_VOLUME or short in _DOT_NAMES:
            continue
        ntres, hi, wtime, wdate, lo, size = struct.unpack_from("<B7xHHHHI", raw, 12)
        entries.append(Entry(short, ntres, long, attr, hi << 16 | lo, size, wdate, wtime))
    return entries


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
        limit = max(1, _MAX_DIR_BYTES // geo.cluster_size) if count is None else count
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
            if 0 in data[-geo.cluster_size :: _ENTRY]:
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
            entry = _match(self.directory(cluster, f"directory {where}"), part)
            if entry is None:
                return None
            if depth == len(parts) - 1:
                return None if entry.is_dir else entry
            if not entry.is_dir or entry.cluster == 0:
                return None
            cluster = entry.cluster
        return None


def _match(entries: list[Entry], name: bytes) -> Entry | None:
    """The one entry known by ``name`` (exact names first), None if none or ambiguous."""
    known = [e.names() for e in entries]
    for tier in (0, 1):
        found = [e for e, n in zip(entries, known, strict=True) if name in n[tier]]
        if found:
            return found[0] if len(found) == 1 else None
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
