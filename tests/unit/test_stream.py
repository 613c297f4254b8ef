"""The copy's read-ahead ring (``dockd.store.stream``): the same bytes in the same order
as one thread reading, a read error raised in the caller, a stop honoured, and the
reader thread never outliving the copy, however it ends."""

from __future__ import annotations

import errno
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


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * BUF + 5])
@pytest.mark.parametrize("buffer_size", [BUF, 5000])
def test_a_stored_file_read_past_the_page_cache_is_read_whole(
    tmp_path: Path, size: int, buffer_size: int
) -> None:
    """The verify's re-read (``O_DIRECT``: aligned reads into an aligned buffer) gives
    every byte of the file, whatever its size and the buffer's, the short last block
    too; on this filesystem (the store's kind: ext4) it is not refused."""
    data = os.urandom(size)
    path = tmp_path / "stored.mp4"
    path.write_bytes(data)
    os.sync()
    assert b"".join(bytes(c) for c in stream.read_direct(path, buffer_size)) == data
    assert store.hash_stored(path, buffer_size=buffer_size) == blake3.blake3(data).hexdigest()


@pytest.mark.parametrize("refused", ["open", "second read"])
def test_where_direct_reads_are_refused_the_re_read_drops_the_cache_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """A filesystem that refuses O_DIRECT (EINVAL at the open, or at a read) still has
    its file re-read whole, from the start, the ordinary way."""
    data = os.urandom(3 * BUF + 5)
    path = tmp_path / "stored.mp4"
    path.write_bytes(data)
    real_open, real_preadv = os.open, os.preadv
    reads = []

    def open_(p: object, flags: int, *args: object) -> int:
        if refused == "open" and flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(p, flags, *args)  # type: ignore[arg-type]

    def preadv(fd: int, bufs: list[memoryview], offset: int) -> int:
        reads.append(offset)
        if refused == "second read" and len(reads) == 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, bufs, offset)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "preadv", preadv)
    assert store.hash_stored(path, buffer_size=BUF) == blake3.blake3(data).hexdigest()
    assert reads == ([] if refused == "open" else [0, BUF])


def test_one_thread_re_reads_file_after_file_with_its_one_buffer(tmp_path: Path) -> None:
    """The verify thread re-reads a shift's photos one after the other into the one
    buffer it keeps: each file whole, whether it is smaller or larger than the last."""
    datas = [os.urandom(n) for n in (300_000, 5, 3 * BUF + 4097, 300_000)]
    for i, data in enumerate(datas):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(data)
        assert store.hash_stored(path, buffer_size=2 * BUF) == blake3.blake3(data).hexdigest()
