"""How the fixity sweep's repairs rewrite a file, so a crash never leaves half of one (issue 15).

Both directions (:mod:`dockd.sweeps.repair`) write the same way: a crash leaves the
old file or the repaired one::

    source read once, every chunk hashed while written to <root>/.incoming/<pid>-<id>.part
    -> fsynced; the BLAKE3 written must be the ledger's (else nothing is kept)
    -> read back from the disk and hashed again
    -> chmod 0440, renamed over the damaged file (or into the missing one's place),
       the directory fsynced

A ``.part`` of a process that died is removed by the next run (of the ingest's
recovery for the store, of this sweep for a target, with its ``.fixity-*``
extractions and half-written images). The store is restored from an
archive copy (its staged file, or the file extracted from its disc image); an archive
copy is made again from the store, in its bag's place (the bag's manifests stay right:
the content has the same hashes), and an optical target's image written again from
the repaired bag, verified, and renamed over the damaged one.

Nothing here touches the ledger: :mod:`dockd.sweeps.repair` records what was done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import blake3

from dockd import store
from dockd.config.policy import ArchiveTarget
from dockd.context import Context, Stopped
from dockd.store.markers import owner_tag, remove_dead_temporaries
from dockd.sweeps.runs import Throttle

CHUNK = 1 << 20
# What the sweep writes on a target outside .incoming starts so (extractions, an image
# being made again), so the next run can tell its leftovers from the archive's files.
LEFTOVER = ".fixity-"


class Mismatch(Exception):
    """The source does not hash to the ledger's BLAKE3: it cannot repair anything."""

    def __init__(self, found: str | None, note: str) -> None:
        super().__init__(note)
        self.found = found


@dataclass(frozen=True)
class Place:
    """Where an archive copy is on its target: the staged file, and for an optical
    target the disc image holding it (when one was made) and its path inside."""

    staged: Path
    image: Path | None
    inner: str
    bag: Path

    @property
    def shown(self) -> str:
        """The copy as a person finds it on the target."""
        return f"{self.image}:{self.inner}" if self.image is not None else str(self.staged)


def place_of(target: ArchiveTarget, rel: str) -> Place:
    """``rel`` is ``archive_copies.path``: ``<station>/<batch>/data/<file>``."""
    parts = PurePosixPath(rel).parts
    bag = target.path / parts[0] / parts[1]
    image = bag.with_name(f"{parts[1]}.iso")
    inner = "/" + "/".join(parts[2:])
    has_image = target.kind == "optical" and image.is_file()
    return Place(target.path / rel, image if has_image else None, inner, bag)


# ------------------------------------------------------------------------ reading


def hash_path(path: Path, throttle: Throttle) -> tuple[str | None, str]:
    """(BLAKE3, "") of a regular file read under the rate limit, or (None, why not)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, f"{path} is not there"
    except OSError as exc:
        return None, f"cannot open {path}: {exc.strerror or exc}"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, f"{path} is not a regular file"
        h = blake3.blake3()
        for chunk in _chunks(fd):
            h.update(chunk)
            throttle.consume(len(chunk))
        return h.hexdigest(), ""
    finally:
        os.close(fd)


def _chunks(fd: int) -> Iterator[bytes]:
    while chunk := os.read(fd, CHUNK):
        yield chunk


def sources(place: Place) -> list[bool]:
    """Where a repair may read the archive copy, in order: the staged file (False) when
    it is there, then the disc image (True) when there is one."""
    return [i for i in (False, True) if (place.image is not None if i else place.staged.is_file())]


@contextlib.contextmanager
def copy_source(place: Place, from_image: bool) -> Iterator[Path]:
    """A readable file holding the archive copy: the staged file, or the file extracted
    from the disc image into a temporary directory beside it (removed afterwards)."""
    if not from_image or place.image is None:
        yield place.staged
        return
    from dockd.evidence import disc  # pycdlib, BagIt: only for copies on a disc image

    with tempfile.TemporaryDirectory(prefix=f"{LEFTOVER}repair-", dir=place.image.parent) as tmp:
        out = Path(tmp) / "copy"
        disc.extract_file(place.image, place.inner, out)
        yield out


# ------------------------------------------------------------------------ writing


def _write_verified(
    ctx: Context,
    src: Path,
    root: Path,
    dest: Path,
    expected: str,
    throttle: Throttle,
    sha256: str | None = None,
) -> None:
    """Copy ``src`` over ``dest`` through ``<root>/.incoming`` (see the module doc);
    :class:`Mismatch` when what was read is not the ledger's, with nothing changed."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Mismatch(None, f"cannot read {src}: {exc.strerror or exc}") from exc
    tmp = store.incoming_dir(root) / f"{owner_tag()}.part"
    b3, sha = blake3.blake3(), hashlib.sha256()
    try:
        store.write_hashed(
            fd, tmp, [b3, sha], buffer_size=CHUNK, stop=ctx.stop, progress=throttle.consume
        )
    except store.Interrupted as exc:
        raise Stopped("stop requested") from exc
    finally:
        os.close(fd)
    try:
        found = b3.hexdigest()
        if found != expected:
            raise Mismatch(found, f"{src} hashes to BLAKE3 {found}, the ledger says {expected}")
        if sha256 is not None and sha.hexdigest() != sha256:
            raise Mismatch(found, f"{src} hashes to SHA-256 {sha.hexdigest()}, not {sha256}")
        again = store.hash_stored(tmp)
        if again != expected:
            raise Mismatch(found, f"the copy written to {tmp} read back as BLAKE3 {again}")
        os.chmod(tmp, store.FILE_MODE)
        store.makedirs(root, PurePosixPath(dest.parent.relative_to(root).as_posix()))
        os.rename(tmp, dest)  # atomic: the damaged file, or the repaired one
        store.fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def check_source(src: Path, expected: str, throttle: Throttle) -> None:
    """The dry run's check of a repair's source: :class:`Mismatch` unless it verifies."""
    found, why = hash_path(src, throttle)
    if found != expected:
        raise Mismatch(found, why or f"{src} hashes to BLAKE3 {found}, the ledger says {expected}")


def restore_store_file(
    ctx: Context, src: Path, root: Path, dest: Path, expected: str, throttle: Throttle
) -> None:
    """Put the archive copy ``src`` in the store at ``dest`` (under the store ``root``)."""
    # A dead repair's .part (the ingest's recovery removes them too). Its publish markers
    # are the recovery's alone: it needs the ledger to unpublish an orphan.
    remove_dead_temporaries(root / store.INCOMING)
    _write_verified(ctx, src, root, dest, expected, throttle)


def remake_copy(
    ctx: Context,
    target: ArchiveTarget,
    place: Place,
    src: Path,
    expected: str,
    sha256: str,
    throttle: Throttle,
    *,
    image: bool = True,
) -> bool:
    """Make the archive copy at ``place`` again from the store file ``src`` (which must
    hash to the ledger's BLAKE3 and the bag's SHA-256); an optical target's image is
    then written again from the bag (unless ``image`` is false: already remade this
    run). True when an image was remade."""
    found, _ = hash_path(place.staged, throttle) if place.staged.exists() else (None, "")
    if found != expected:
        if not place.bag.is_dir():
            raise Mismatch(None, f"its bag {place.bag} is gone: archive the file again by hand")
        _write_verified(ctx, src, target.path, place.staged, expected, throttle, sha256)
    if place.image is None or not image:
        return False
    remake_image(target, place)
    return True


def remake_image(target: ArchiveTarget, place: Place) -> None:
    """Write the bag's image again, verified, and rename it over the damaged one."""
    from dockd.evidence import disc  # pycdlib, BagIt: only for copies on a disc image

    assert place.image is not None
    tmp = place.image.with_name(f"{LEFTOVER}{place.image.name}-{uuid.uuid4().hex[:8]}")
    try:
        disc.write_image(place.bag, tmp, volid=disc.volume_id(f"{place.bag.name}_{target.name}"))
        os.replace(tmp, place.image)
        store.fsync_dir(place.image.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def clean_target(target: ArchiveTarget) -> None:
    """Remove what a fixity run that died left on ``target``: the ``.part`` files of its
    repairs, and its ``.fixity-*`` files and directories beside the batches (one fixity
    run at a time, so none of them is in use when the next one starts)."""
    with contextlib.suppress(OSError):
        remove_dead_temporaries(target.path / store.INCOMING)
    for leftover in target.path.glob(f"*/{LEFTOVER}*"):
        with contextlib.suppress(OSError):
            if leftover.is_dir() and not leftover.is_symlink():
                for here, dirs, _files in os.walk(leftover):  # extracted read-only
                    for d in dirs:
                        os.chmod(os.path.join(here, d), 0o700)
                leftover.chmod(0o700)
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
