"""How the store reads a recorder's file: a recorder mounted through FUSE (the dock's
``fusefat`` and ``exfat-fuse`` on a kernel without vfat or exfat) is read as it comes,
without the doubled read-ahead ``POSIX_FADV_SEQUENTIAL`` asks for, which made fusefat
4-6 times slower (bench/README.md); a file on a kernel filesystem is still advised."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pytest

from dockd import store
from dockd.store import stream
from tests.helpers import fatimage
from tests.helpers.skips import need

CLIP = random.Random(16).randbytes(3 * 1024 * 1024 + 17)


def _copied(source: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], bool]:
    """The advice the copy of ``source`` gave its file, and whether it is on FUSE; the
    copy checked byte for byte."""
    advised: list[int] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append(advice)
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    fd = os.open(source, os.O_RDONLY)
    try:
        fuse = stream.on_fuse(fd)
        incoming = store.copy_into_incoming(root, fd, buffer_size=1 << 20)
    finally:
        os.close(fd)
        monkeypatch.undo()
    assert incoming.size == len(CLIP)
    assert incoming.blake3 == blake3.blake3(CLIP).hexdigest()
    assert incoming.path.read_bytes() == CLIP
    return advised, fuse


def test_a_recorder_mounted_through_fuse_is_read_without_a_doubled_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(
        root=True,
        tools=fatimage.TOOLS,
        why="a real FAT32 card on a loop device, mounted with fusefat as the dock mounts it",
    )
    image = fatimage.gbk_card(tmp_path / "card.img", {b"DCIM/CLIP0001.MP4": CLIP}, label="CARD")
    with fatimage.mounted(image, tmp_path / "mnt") as mnt:
        advised, fuse = _copied(mnt / "DCIM" / "CLIP0001.MP4", tmp_path / "store", monkeypatch)
    assert fuse
    assert os.POSIX_FADV_SEQUENTIAL not in advised


def test_a_file_on_a_kernel_filesystem_is_still_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "CLIP0001.MP4"
    local.write_bytes(CLIP)
    advised, fuse = _copied(local, tmp_path / "store", monkeypatch)
    assert not fuse
    assert advised == [os.POSIX_FADV_SEQUENTIAL]
