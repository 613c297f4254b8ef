"""The on-disk format of FAT12/16/32: boot sector, directory entries, names. No I/O.

Bytes in, values out, and nothing the bytes say is trusted:

    parse_boot_sector   the volume's geometry, checked as Linux's FAT driver checks it
                        (sector and cluster size, reserved sectors, FAT count, media
                        byte) and that the FAT can describe every cluster
    parse_directory     one directory's entries; a long name only when its pieces are
                        complete, in order and carry the checksum of their 8.3 entry
    Entry.names         the names an entry is known by (exact), and the other ways a
                        driver may list it (derived: fusefat's 0x05, NT case flags)
    match_name          the one entry a name means, or None when none or two could be

FAT times are local wall-clock times without a zone: they are read in the process's
local time zone, as the kernel's vfat and mtools read them.

``dockd.ingest.fatreader`` reads the device and walks cluster chains with these.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

ENTRY = 32  # bytes of one directory entry
_ATTR_VOLUME = 0x08
_ATTR_DIRECTORY = 0x10
_ATTR_LONG_NAME = 0x0F
_LAST_LONG_ENTRY = 0x40
_NT_LOWER_BASE = 0x08
_NT_LOWER_EXT = 0x10
_DELETED = 0xE5
_KANJI_E5 = 0x05  # a first name byte of 0xE5 is stored as 0x05 (0xE5 marks a deleted entry)
MAX_DIR_BYTES = 65536 * ENTRY  # FAT allows at most 65536 entries in a directory
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
    root_sectors = (root_entries * ENTRY + sector - 1) // sector
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
        root_size=0 if fat_type == 32 else root_entries * ENTRY,
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
    for at in range(0, len(data) - ENTRY + 1, ENTRY):
        raw = data[at : at + ENTRY]
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


def match_name(entries: list[Entry], name: bytes) -> Entry | None:
    """The one entry known by ``name`` (exact names first), None if none or ambiguous."""
    known = [e.names() for e in entries]
    for tier in (0, 1):
        found = [e for e, n in zip(entries, known, strict=True) if name in n[tier]]
        if found:
            return found[0] if len(found) == 1 else None
    return None
