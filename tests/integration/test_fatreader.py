"""The FAT reader finds files by their exact name bytes on real FAT images.

Images are made by the real tools (mkfs.vfat, mtools; GBK 8.3 names patched in as a
Chinese-locale recorder writes them: tests/helpers/fatimage.py) and read as plain files, the
way :func:`dockd.ingest.fatreader.for_volume` reads a block device. Damage is done to
the bytes of a real image (a looping or cut FAT chain, two entries of one name, a
swapped card): the reader must say so, never hang, never hand back the wrong file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockd.ingest import fatreader
from dockd.ingest.fatreader import FatReader
from dockd.ingest.identify import VolumeInfo
from tests.helpers import fatimage
from tests.helpers.skips import need

_ENV = {**os.environ, "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}
IMAGE_TOOLS = ("mkfs.vfat", "mcopy", "mmd", "mdel", "fsck.vfat")


def data(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


# name bytes on the card -> content (GBK 8.3 names, nested ASCII long names, sizes from
# empty to many clusters: the image has 512-byte clusters)
FILES = {
    b"DCIM/100MEDIA/" + "执法记录.MP4".encode("gbk"): data(1, 300_000),
    b"DCIM/" + "现场.MP4".encode("gbk"): data(2, 513),
    # a first byte 0xE5 (the deleted-entry mark) is stored as 0x05
    "濉录.MP4".encode("gbk"): data(3, 4096),
    b"DCIM/100MEDIA/ZFY2024000123_012345_20260315063000_0001.MP4": data(4, 70_000),
    b"Record Files/2026-03-15/night shift clip.mp4": data(5, 1),
    b"EMPTY.MP4": b"",
}
FRAGMENTED = b"DCIM/FRAG.MP4"


def mtools(*argv: str) -> None:
    subprocess.run(argv, env=_ENV, check=True, capture_output=True)


@dataclass(frozen=True)
class Card:
    image: Path
    files: dict[bytes, bytes]
    made_after: float  # POSIX time before the files were written


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Card:
    """A real FAT32 card with GBK 8.3 names, nested long names and one fragmented file."""
    need(tools=IMAGE_TOOLS, why="real FAT images made by dosfstools and mtools")
    root = tmp_path_factory.mktemp("card")
    before = time.time()
    image = fatimage.gbk_card(root / "card.img", {**FILES, b"DCIM/A.BIN": b"a"}, label="GBKCARD")
    # A.BIN's cluster, between two files, becomes a hole that FRAG.MP4 starts in (once
    # the FSInfo hint no longer points past it): its chain is not contiguous
    mtools("mdel", "-i", str(image), "::/DCIM/A.BIN")
    raw = bytearray(image.read_bytes())
    fsinfo = int.from_bytes(raw[48:50], "little") * 512
    raw[fsinfo + 492 : fsinfo + 496] = b"\xff\xff\xff\xff"  # next free cluster: unknown
    image.write_bytes(bytes(raw))
    frag = root / "frag.bin"
    frag.write_bytes(data(6, 20_000))
    mtools("mcopy", "-i", str(image), str(frag), "::/" + FRAGMENTED.decode())
    files = {**FILES, FRAGMENTED: frag.read_bytes()}
    subprocess.run(["fsck.vfat", "-n", str(image)], check=True, capture_output=True)
    return Card(image, files, before)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_gbk_and_nested_long_names_give_their_size_mtime_and_content(
    card: Card, tmp_path: Path
) -> None:
    image, files = card.image, card.files
    made = image.stat().st_mtime
    reader = FatReader(image, scratch=str(tmp_path))
    for rel, content in files.items():
        found = reader.stat(rel)
        assert found is not None, rel
        size, mtime = found
        assert size == len(content), rel
        # written while the card was made (FAT keeps local time in 2-second steps)
        assert card.made_after - 2 <= mtime <= made, (rel, time.ctime(mtime), time.ctime(made))
        fd = reader.open(rel)
        try:
            assert stat.S_ISREG(os.fstat(fd).st_mode)
            assert read_all(fd) == content, rel
            os.lseek(fd, 0, os.SEEK_SET)  # seekable: the pipeline reads it twice
            assert read_all(fd) == content, rel
        finally:
            os.close(fd)
        assert os.listdir(tmp_path) == []  # the extracted copy has no name: nothing left


def test_a_fragmented_file_is_read_along_its_chain(card: Card, tmp_path: Path) -> None:
    image, files = card.image, card.files
    reader = FatReader(image, scratch=str(tmp_path))
    entry = reader.entry(FRAGMENTED)
    assert entry is not None
    geo = reader.geometry
    assert geo is not None
    raw = image.read_bytes()
    first_next = int.from_bytes(raw[geo.fat_offset + 4 * entry.cluster :][:4], "little")
    assert first_next != entry.cluster + 1  # the image really is fragmented there
    fd = reader.open(FRAGMENTED)
    try:
        assert read_all(fd) == files[FRAGMENTED]
    finally:
        os.close(fd)


def test_a_name_stored_with_first_byte_0x05_is_found_as_0xE5_and_as_listed(
    card: Card,
) -> None:
    reader = FatReader(card.image)
    name = "濉录.MP4".encode("gbk")
    assert name[0] == 0xE5
    assert reader.stat(name) == reader.stat(b"\x05" + name[1:])  # fusefat lists it as stored
    assert reader.stat(name) is not None


@pytest.mark.parametrize(
    "rel",
    [
        b"DCIM/100MEDIA/" + "执法记录.MP3".encode("gbk"),  # no such file
        "执法记录.MP4".encode("gbk"),  # not in this directory
        b"dcim/" + "现场.MP4".encode("gbk"),  # names are matched byte for byte
        b"DCIM/" + "现场.MP4".encode(),  # the same text in another encoding
        b"DCIM",  # a directory, not a file
        b"DCIM/100MEDIA",
        b"EMPTY.MP4/x",  # through a file
        b"DCIM/../EMPTY.MP4",
        b"",
        b"GBKCARD",  # the volume label entry is not a file
    ],
)
def test_a_name_that_is_not_a_file_there_gives_none(card: Card, rel: bytes) -> None:
    image = card.image
    reader = FatReader(image)
    assert reader.stat(rel) is None
    with pytest.raises(OSError, match="is not in the FAT filesystem") as err:
        reader.open(rel)
    assert err.value.errno == errno.ENOENT


def test_reads_never_write(card: Card, tmp_path: Path) -> None:
    image, files = card.image, card.files
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    reader = FatReader(image, scratch=str(tmp_path))
    for rel in files:
        os.close(reader.open(rel))
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before


# ---------------------------------------------------------------------------- damaged cards


@pytest.fixture
def copy(card: Card, tmp_path: Path) -> Path:
    dest = tmp_path / "damaged.img"
    shutil.copyfile(card.image, dest)
    return dest


def set_fat(image: Path, cluster: int, value: int) -> None:
    geo = FatReader(image).geometry
    assert geo is not None and geo.fat_type == 32
    with image.open("r+b") as fh:
        fh.seek(geo.fat_offset + 4 * cluster)
        fh.write(value.to_bytes(4, "little"))


BIG = b"DCIM/100MEDIA/" + "执法记录.MP4".encode("gbk")


def test_a_looping_chain_is_an_error_naming_the_file_not_a_hang(copy: Path) -> None:
    entry = FatReader(copy).entry(BIG)
    assert entry is not None
    set_fat(copy, entry.cluster + 10, entry.cluster + 3)  # cluster 11 of ~586 loops back
    reader = FatReader(copy)
    assert reader.stat(BIG) == (300_000, entry.mtime)  # the entry itself is sound
    with pytest.raises(OSError, match="loops back") as err:
        reader.open(BIG)
    assert "执法记录.MP4" in str(err.value) and "fsck.vfat -n" in str(err.value)
    assert err.value.errno == errno.EIO


def test_a_chain_cut_short_or_through_a_free_cluster_is_an_error(copy: Path) -> None:
    entry = FatReader(copy).entry(BIG)
    assert entry is not None
    set_fat(copy, entry.cluster + 4, 0x0FFFFFFF)
    with pytest.raises(OSError, match="end after 5 of 586"):
        FatReader(copy).open(BIG)
    set_fat(copy, entry.cluster + 4, 0)
    with pytest.raises(OSError, match="runs into a free cluster"):
        FatReader(copy).open(BIG)


def test_two_entries_answering_to_one_name_are_taken_by_neither(copy: Path) -> None:
    name = "现场.MP4".encode("gbk")
    raw = bytearray(copy.read_bytes())
    other = fatimage._short_entry(b"FRAG.MP4")
    at = raw.find(other)
    assert at > 0 and raw.find(other, at + 1) < 0
    raw[at : at + 11] = fatimage._short_entry(name)  # FRAG.MP4 now has the same name
    copy.write_bytes(bytes(raw))
    reader = FatReader(copy)
    assert reader.stat(b"DCIM/" + name) is None
    with pytest.raises(OSError, match="is not in the FAT filesystem"):
        reader.open(b"DCIM/" + name)


def test_a_card_swapped_under_the_reader_is_noticed(copy: Path, tmp_path: Path) -> None:
    reader = FatReader(copy)
    assert reader.stat(BIG) is not None
    other = fatimage.gbk_card(tmp_path / "other.img", {BIG: b"not the same"}, label="OTHER")
    os.replace(other, copy)
    assert reader.stat(BIG) is None
    with pytest.raises(OSError, match="was the card swapped") as err:
        reader.open(BIG)
    assert err.value.errno == errno.ENODEV


def test_not_a_fat_filesystem_is_refused(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    with pytest.raises(OSError, match="does not hold a FAT filesystem"):
        FatReader(blank)
    with pytest.raises(OSError, match="cannot open"):
        FatReader(tmp_path / "missing.img")


# ---------------------------------------------------------------------------- FAT12, FAT16


@pytest.mark.parametrize(("fat", "size_kib"), [(12, 1440), (16, 32 * 1024)])
def test_fat12_and_fat16_with_their_fixed_root_directory(
    tmp_path: Path, fat: int, size_kib: int
) -> None:
    need(tools=IMAGE_TOOLS, why="real FAT images made by dosfstools and mtools")
    image = tmp_path / f"fat{fat}.img"
    with image.open("wb") as fh:
        fh.truncate(size_kib * 1024)
    subprocess.run(["mkfs.vfat", "-F", str(fat), str(image)], check=True, capture_output=True)
    files = {b"ROOT.MP4": data(7, 5000), b"Sub Dir/a long name.mp4": data(8, 9000)}
    mtools("mmd", "-i", str(image), "::/Sub Dir")
    for n, (rel, content) in enumerate(files.items()):
        src = tmp_path / f"{n}.bin"
        src.write_bytes(content)
        mtools("mcopy", "-i", str(image), str(src), "::/" + rel.decode())
    reader = FatReader(image)
    assert reader.geometry is not None and reader.geometry.fat_type == fat
    for rel, content in files.items():
        found = reader.stat(rel)
        assert found is not None and found[0] == len(content)
        fd = reader.open(rel)
        try:
            assert read_all(fd) == content
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------- for_volume


def test_for_volume_needs_a_block_device(card: Card) -> None:
    image = card.image
    assert fatreader.for_volume(VolumeInfo()) is None
    assert fatreader.for_volume(VolumeInfo(devnode=str(image))) is None  # a file, not a device
    assert fatreader.for_volume(VolumeInfo(devnode="/dev/nonexistent-dockd")) is None


def test_for_volume_reads_a_fat_block_device_and_ignores_others(card: Card, tmp_path: Path) -> None:
    need(root=True, tools=("losetup",), why="real loop devices")
    image, files = card.image, card.files
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 20))
    for path, fat in ((image, True), (blank, False)):
        dev = subprocess.run(
            ["losetup", "--find", "--show", "--read-only", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            reader = fatreader.for_volume(VolumeInfo(devnode=dev), scratch=str(tmp_path))
            if not fat:
                assert reader is None
                continue
            assert reader is not None
            rel = b"DCIM/" + "现场.MP4".encode("gbk")
            assert reader.stat(rel) == FatReader(image).stat(rel)
            fd = reader.open(rel)
            try:
                assert read_all(fd) == files[rel]
            finally:
                os.close(fd)
        finally:
            subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)
