"""Copying with the stages overlapped: the recorder read ahead, the store written back early.

One copy has three devices to keep busy: the recorder (reading), the CPU (BLAKE3) and
the store (writing, and making it durable). Done in one thread each waits for the
others. Here::

    reader thread   readv(source) into a free buffer -> the full queue
    caller          the full queue -> BLAKE3 -> write(target) -> the free buffers
                    every WRITEBACK_BYTES written: sync_file_range(WRITE) of that stretch

``readv``, ``write`` and BLAKE3 on a large buffer all release the GIL, so the reader
runs while the caller hashes and writes. The ring is bounded (``DEPTH`` buffers), so
memory stays the same whatever the file's size. Write-back of each stretch starts as
soon as it is written, instead of when the kernel's dirty limits are reached: the
``fsync`` at the end waits for the last stretch, not for the whole file.

Nothing here weakens the guarantee: the caller still ``fsync``s the file (and the
store its directory) before a ledger row names it.

A stored file is read back for its verify past the page cache (:func:`read_direct`,
``O_DIRECT``): from the disk itself, with no copy through the cache, which would
cost the kernel as much CPU as the copy into the store did.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import mmap
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator
from functools import cache

DEPTH = 4  # buffers in flight between the reader and the writer
WRITEBACK_BYTES = 8 << 20  # start writing back every 8 MiB written
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start write-back of dirty pages, do not wait


class Interrupted(Exception):
    """The copy was abandoned because a stop was requested (shutdown, unplug)."""


def _check(stop: threading.Event | None, doing: str) -> None:
    if stop is not None and stop.is_set():
        raise Interrupted(f"stop requested during {doing}")


def chunks(
    source_fd: int, buffer_size: int, stop: threading.Event | None, doing: str
) -> Generator[memoryview]:
    """The rest of an open file, read once in one thread with one reused buffer (each chunk
    valid until the next is read); :class:`Interrupted` as soon as ``stop`` is set."""
    view = memoryview(bytearray(buffer_size))
    while True:
        _check(stop, doing)
        n = os.readv(source_fd, [view])
        if n == 0:
            return
        yield view[:n]


_Item = tuple[bytearray, int] | BaseException


def read_ahead(
    source_fd: int, buffer_size: int, stop: threading.Event | None, doing: str
) -> Generator[memoryview]:
    """Like :func:`chunks`, with a reader thread filling the next buffers meanwhile.

    Each chunk is valid until the next is asked for. A read error is raised here, in
    the caller's thread. However the caller stops (the end, an error, a stop, closing
    the generator), the reader thread is ended and joined before this returns.
    """
    free: queue.Queue[bytearray | None] = queue.Queue()
    full: queue.Queue[_Item] = queue.Queue()
    for _ in range(DEPTH):
        free.put(bytearray(buffer_size))

    done = threading.Event()

    def read() -> None:
        try:
            while (buf := free.get()) is not None and not done.is_set():
                _check(stop, doing)
                n = os.readv(source_fd, [buf])
                full.put((buf, n))
                if n == 0:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            full.put(exc)

    reader = threading.Thread(target=read, name="dockd-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item = full.get()
            if isinstance(item, BaseException):
                raise item
            buf, n = item
            if n == 0:
                return
            _check(stop, doing)
            yield memoryview(buf)[:n]
            free.put(buf)
    finally:
        done.set()  # the reader ends at its next turn; None wakes it if it waits for a buffer
        free.put(None)
        reader.join()


_SyncFileRange = Callable[[int, int, int, int], int]


@cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` asks ``ldconfig``)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None


@cache
def _sync_file_range() -> _SyncFileRange | None:
    """libc's sync_file_range(2), or None where there is none (not Linux)."""
    fn = getattr(_libc(), "sync_file_range", None)
    if fn is None:
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    sync: _SyncFileRange = fn
    return sync


FUSE_SUPER_MAGIC = 0x65735546  # statfs(2)'s f_type of a FUSE filesystem


@cache
def _fstatfs() -> Callable[[int, ctypes.Array[ctypes.c_char]], int] | None:
    """libc's fstatfs(2), or None where there is none."""
    fn = getattr(_libc(), "fstatfs", None)
    if fn is None:
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_char_p)
    fn.restype = ctypes.c_int
    statfs: Callable[[int, ctypes.Array[ctypes.c_char]], int] = fn
    return statfs


def on_fuse(fd: int) -> bool:
    """Is the open file on a FUSE filesystem (the dock's ``fusefat``, ``exfat-fuse``)?
    False where it cannot be told."""
    fn = _fstatfs()
    if fn is None:
        return False
    buf = ctypes.create_string_buffer(256)  # a struct statfs: 120 bytes on 64-bit Linux
    if fn(fd, buf) != 0:
        return False
    # f_type, the first field: a word (long) whose low 32 bits hold the magic
    word = int.from_bytes(buf.raw[: ctypes.sizeof(ctypes.c_long)], sys.byteorder)
    return word & 0xFFFFFFFF == FUSE_SUPER_MAGIC


class WriteBack:
    """Starts write-back of each ``WRITEBACK_BYTES`` stretch of ``fd`` once it is written.

    Advisory: where sync_file_range is missing or refused (some FUSE or network
    filesystems), nothing happens and the final fsync does all the work, as before.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._fn = _sync_file_range()
        self._started = 0  # bytes whose write-back has been started

    def written(self, upto: int) -> None:
        """``upto`` bytes of the file are written."""
        if self._fn is None or upto - self._started < WRITEBACK_BYTES:
            return
        with contextlib.suppress(OSError):
            if self._fn(self._fd, self._started, upto - self._started, _SYNC_FILE_RANGE_WRITE):
                self._fn = None  # refused (EINVAL, ESPIPE...): stop asking
        self._started = upto


class NoDirect(Exception):
    """The file cannot be read with ``O_DIRECT`` here (the filesystem refuses it)."""


_ALIGN = 4096  # offsets and buffers of direct reads: a multiple of any block size


def read_direct(path: str | os.PathLike[str], buffer_size: int) -> Generator[memoryview]:
    """A file read from its start past the page cache (``O_DIRECT``), one chunk at a time
    into a page-aligned buffer (each chunk valid until the next is read). The buffer is
    the calling thread's, kept for its next file: a fresh one costs each file the
    faulting in of every page of it, more than the read of a photo. So one read at a
    time per thread.

    Raises :class:`NoDirect` when the filesystem refuses direct reads (tmpfs, some
    FUSE and network filesystems), at the open or at any read, so that the caller
    reads the file anew in the ordinary way; other errors are raised as they are.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise NoDirect(str(exc)) from exc
        raise
    try:
        size = os.fstat(fd).st_size
        # no longer than the file: each read pins the pages it is given
        want = max(_ALIGN, -(-min(buffer_size, size) // _ALIGN) * _ALIGN)
        view = _direct_buffer(want)[:want]
        offset = 0
        while True:
            try:
                n = os.preadv(fd, [view], offset)
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise NoDirect(str(exc)) from exc
                raise
            if n == 0:
                return
            yield view[:n]
            offset += n
            if n % _ALIGN:  # only the file's last block is read short
                if os.fstat(fd).st_size != offset:
                    raise NoDirect(f"short direct read at {offset}")
                return
    finally:
        os.close(fd)


_THREAD = threading.local()


def _direct_buffer(size: int) -> memoryview:
    """This thread's page-aligned buffer (anonymous memory is), of at least ``size``
    bytes. Never closed while in use: a larger one replaces it, and the old one goes
    with the last view of it."""
    buf: memoryview | None = getattr(_THREAD, "direct", None)
    if buf is None or len(buf) < size:
        buf = memoryview(mmap.mmap(-1, size))
        _THREAD.direct = buf
    return buf
