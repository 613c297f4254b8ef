"""The copy's read-ahead ring (``dockd.store.stream``): the same bytes in the same order
as one thread reading, a read error raised in the caller, a stop honoured, and the
reader thread never outliving the copy, however it ends."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from dockd import store
from dockd.store import stream

BUF = 64 * 1024


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "dockd-read-ahead"]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    data = os.urandom(BUF * 37 + 1234)  # many buffers, the last one short
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd, data
    finally:
        os.close(fd)


def test_read_ahead_gives_the_file_in_order_and_the_copy_hashes_it(
    source: tuple[int, bytes], tmp_path: Path
) -> None:
    fd, data = source
    got = b"".join(bytes(chunk) for chunk in stream.read_ahead(fd, BUF, None, "copy"))
    assert got == data
    assert _readers() == []

    os.lseek(fd, 0, os.SEEK_SET)
    hasher = blake3.blake3()
    size = store.write_hashed(fd, tmp_path / "copy.part", [hasher], buffer_size=BUF)
    assert size == len(data)
    assert (tmp_path / "copy.part").read_bytes() == data
    assert hasher.hexdigest() == blake3.blake3(data).hexdigest()


def test_a_read_error_is_raised_in_the_caller_and_the_reader_is_gone(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # reading a directory: EISDIR
    try:
        with pytest.raises(IsADirectoryError):
            list(stream.read_ahead(fd, BUF, None, "copy"))
    finally:
        os.close(fd)
    assert _readers() == []


def test_a_stop_interrupts_the_copy_and_leaves_no_file(
    source: tuple[int, bytes], tmp_path: Path
) -> None:
    fd, _ = source
    stop = threading.Event()
    seen = 0

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        if seen >= 3 * BUF:
            stop.set()

    target = tmp_path / "copy.part"
    with pytest.raises(store.Interrupted):
        store.write_hashed(
            fd, target, [blake3.blake3()], buffer_size=BUF, stop=stop, progress=progress
        )
    assert not target.exists()
    assert _readers() == []


def test_a_caller_that_stops_early_ends_the_reader(source: tuple[int, bytes]) -> None:
    fd, data = source
    chunks = stream.read_ahead(fd, BUF, None, "copy")
    first = bytes(next(chunks))
    assert first == data[:BUF]
    chunks.close()  # as a failed write leaves the loop
    assert _readers() == []
