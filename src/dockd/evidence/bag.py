"""BagIt bags (RFC 8493) of originals: the one bag writer of evidence export and the archive.

A bag is made in three steps::

    copy_in(...)    per original: copy it into <bag>/data/ while hashing (BLAKE3 and
                    the BagIt algorithms) in the same single read; the caller checks
                    the hashes against the ledger before the copy gets its name
    write_bag(...)  bagit.txt, one payload manifest per algorithm and the BLAKE3 list
                    from the hashes of that read, any extra tag files; then
                    bagit-python writes bag-info.txt and the tag manifests
                    (``Bag.save``) and checks the bag is complete (Payload-Oxum, every
                    payload file listed, nothing else in data/)
    read_back(...)  hash a copy again, from the medium (the archive's check)

Why not ``bagit.make_bag``: it moves a directory into ``data/`` and then reads every
payload file again to hash it (``make_manifests``), a second full read of
gigabytes of footage the copy has just hashed. bagit-python has no public call that
writes a payload manifest from known hashes, so the payload manifests are written
here, in the library's own line format and path encoding (CR and LF
percent-encoded; a ``%`` is left as it is, as bagit-python writes and reads it:
LibraryOfCongress/bagit-python#157), and ``Bag.save(processes=1)`` does the rest,
re-reading only the small tag files.

BLAKE3 (the ledger's hash) is not a bagit-python algorithm: the library takes only
``hashlib.algorithms_guaranteed`` (``CHECKSUM_ALGOS``) and hashes with
``hashlib.new(name)``, with no hook for another hash short of patching its
internals. So the bags carry SHA-256 (and SHA-512 for exports) manifests, which
bagit-python validates, and the BLAKE3 of each file in a tag file in ``b3sum``
format (``blake3sums.txt`` in exports, ``manifest-blake3.txt`` in archive batches),
which the tag manifests cover like every other tag file.

``Bag.save`` works relative to the current directory (it ``chdir``s into the bag):
the call is serialised by a lock and the caller's directory is restored even when
it fails. dockd resolves every path it uses to an absolute one (the config loader
does), so no other thread is affected by the short change of directory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import blake3

from dockd import __version__, store
from dockd.errors import DockdError

if TYPE_CHECKING:
    import bagit

CHUNK = 1 << 20
BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

_SAVE_LOCK = threading.Lock()


class BagFailed(DockdError):
    """bagit-python found the bag incomplete or could not write its tag files."""


@dataclass(frozen=True)
class Payload:
    """One payload file: its path under ``data/``, size, BLAKE3 and BagIt hashes."""

    rel: PurePosixPath
    size: int
    blake3: str
    hashes: Mapping[str, str] = field(default_factory=dict)  # hashlib name -> hex digest


class _Hashing:
    """BLAKE3 and the BagIt algorithms, fed the same chunks."""

    def __init__(self, algorithms: Sequence[str]) -> None:
        self.b3 = blake3.blake3()  # one thread hashes faster than a disk reads
        self.others = {a: hashlib.new(a) for a in algorithms}

    def all(self) -> list[store.Hasher]:
        return [self.b3, *self.others.values()]

    def payload(self, rel: PurePosixPath, size: int) -> Payload:
        hashes = {a: h.hexdigest() for a, h in self.others.items()}
        return Payload(rel, size, self.b3.hexdigest(), hashes)


def copy_in(
    src: Path,
    bag: Path,
    rel: PurePosixPath,
    algorithms: Sequence[str],
    *,
    mode: int = store.FILE_MODE,
    check: Callable[[Payload], None] | None = None,
) -> Payload:
    """Copy ``src`` to ``<bag>/data/<rel>``, reading it once and hashing as it goes.

    The copy is written as ``<name>.part`` (:func:`dockd.store.write_hashed`: fsynced,
    removed on any failure) and gets its name, read-only ``mode``, only after ``check``
    accepted its hashes: when ``check`` raises, nothing is left in the bag. Never
    replaces an existing file.
    """
    dst = bag / "data" / rel
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "already exists", str(dst))
    store.makedirs(bag, PurePosixPath("data") / rel.parent)
    tmp = dst.with_name(dst.name + ".part")
    hashing = _Hashing(algorithms)
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = store.write_hashed(fd, tmp, hashing.all(), buffer_size=CHUNK)
    finally:
        os.close(fd)
    copied = hashing.payload(rel, size)
    try:
        if check is not None:
            check(copied)
        os.chmod(tmp, mode)
        os.rename(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    store.fsync_dir(dst.parent)
    return copied


def read_back(bag: Path, rel: PurePosixPath, algorithms: Sequence[str]) -> Payload:
    """The hashes of ``<bag>/data/<rel>`` read back from the medium, not the page cache."""
    hashing = _Hashing(algorithms)
    size = 0
    fd = os.open(bag / "data" / rel, os.O_RDONLY | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # advisory: drop what the copy left cached
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashing.all():
                h.update(memoryview(chunk))
            size += len(chunk)
    return hashing.payload(rel, size)


def manifest_path(rel: PurePosixPath) -> str:
    """A payload path as a manifest line names it (bagit-python's encoding)."""
    return ("data/" + rel.as_posix()).replace("\r", "%0D").replace("\n", "%0A")


def write_bag(
    bag: Path,
    files: Sequence[Payload],
    info: Mapping[str, str],
    *,
    algorithms: Sequence[str],
    blake3_name: str,
    tag_files: Mapping[str, str] | None = None,
) -> bagit.Bag:
    """Make ``bag``, whose ``data/`` holds exactly ``files``, a valid BagIt bag.

    ``info`` goes to bag-info.txt (empty values left out, each on one line) with
    Payload-Oxum and Bag-Software-Agent added; ``tag_files`` (name -> text) are
    written beside it and covered by the tag manifests.
    """
    import bagit  # here: bagit imports multiprocessing, for bag writers only

    texts = {"bagit.txt": BAGIT_TXT}
    for alg in algorithms:
        texts[f"manifest-{alg}.txt"] = "".join(
            f"{f.hashes[alg]}  {manifest_path(f.rel)}\n" for f in files
        )
    texts[blake3_name] = "".join(f"{f.blake3}  {manifest_path(f.rel)}\n" for f in files)
    texts.update(tag_files or {})
    for name, text in texts.items():
        (bag / name).write_text(text, encoding="utf-8", newline="\n")
    result = bagit.Bag(str(bag))
    result.info.update({k: " ".join(v.split()) for k, v in info.items() if v.strip()})
    result.info.setdefault("Bag-Software-Agent", f"dockd {__version__}")
    result.info["Payload-Oxum"] = f"{sum(f.size for f in files)}.{len(files)}"
    try:
        with _SAVE_LOCK, _cwd_restored():
            os.chdir(bag)  # where Bag.save goes anyway: it then returns here, not to a lost cwd
            result.save(processes=1)
        result.validate(completeness_only=True)  # sizes, counts and names: no re-hash
    except bagit.BagError as exc:
        raise BagFailed(f"the bag {bag} is not complete: {exc}") from exc
    for name in os.listdir(bag):
        if name != "data":
            with open(bag / name, "rb") as fh:
                os.fsync(fh.fileno())
    store.fsync_dir(bag)
    return result


def validate(bag: Path) -> None:
    """Check ``bag`` as its receiver would: bagit-python re-hashes every payload and tag
    file (a bag read back from a disc image, :mod:`dockd.evidence.disc`)."""
    import bagit

    try:
        bagit.Bag(str(bag)).validate(processes=1)
    except bagit.BagError as exc:
        raise BagFailed(f"the bag {bag} does not validate: {exc}") from exc


@contextlib.contextmanager
def _cwd_restored() -> Iterator[None]:
    """Put the process back in its working directory after bagit-python's ``chdir``."""
    here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield
    finally:
        try:
            os.fchdir(here)
        finally:
            os.close(here)
