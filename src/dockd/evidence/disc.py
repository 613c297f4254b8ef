"""Disc images of a bag (刻录光盘): made, read back, burnt; the only module that runs xorriso.

Evidence exports (``dockd export ... --iso FILE``) and the archive's optical targets
hand footage over on disc. This module makes the image (through :mod:`dockd.evidence.udf`,
pycdlib), reads it back, and runs the configured burn command. Each xorriso run is a
subprocess with an argument list (never a shell), a timeout, its output captured and
named in the error, which says what to do.

The image is ISO 9660 with Rock Ridge (real POSIX names and modes: what Linux, xorriso
and libarchive read), Joliet (UTF-16 names: what older Windows reads) and UDF (the
full real names, Chinese too: what Windows, macOS and Linux read first when it is there),
written by pycdlib: xorriso cannot write UDF, and no other Debian tool fills a UDF file
system without mounting it read-write as root (:mod:`dockd.evidence.udf` says more).

An image is verified before it is used, the way its receivers would read it::

    Rock Ridge  xorriso -osirrox on -indev IMG -extract / DIR, an independent reader;
                then bagit-python on DIR: every payload and tag file re-hashed
                (SHA-256/512 against the bag's manifests)
    UDF         every file of the UDF tree read out by pycdlib into DIR (the same
                files as the Rock Ridge tree), then bagit-python on DIR again
    Joliet      the Joliet tree lists every file, with its size, under the name the
                writer gave it

then hashed (BLAKE3 and SHA-256) for the audit trail. An image is written under a
hidden temporary name and gets its own only when verified, never over an existing file.
7-Zip's UDF reader, written apart from pycdlib, reads the same images in the tests.

Images made before dockd wrote UDF were written by xorriso with ``-md5 on``: they carry
an MD5 of every file and of the session, found by their ``libisofs_checksum_tag``.
Those are still checked that way (``xorriso -check_md5``), and files extracted from
them are checked by xorriso against their MD5. pycdlib records no such checksums: a
file extracted from a new image, and the fixity sweep's check of a whole image
(:func:`check_image`), are checked against the bag's own SHA-256 (or SHA-512)
manifest read from the image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import blake3
import structlog

from dockd.config.dock import render
from dockd.errors import DockdError, UsageError
from dockd.evidence import bag, udf

log = structlog.get_logger("dockd.evidence.disc")

XORRISO = "xorriso"
# A 25 GB BD-R image is written and read back three times at disk speed: hours, not days.
TIMEOUT_S = 6 * 3600.0
CHUNK = 1 << 20
# A volume id in d-characters (A-Z, 0-9, _): ISO 9660 and UDF hold 32 and 30, Joliet 16
# (UTF-16); one label on all three trees, so 16.
VOLID_MAX = 16
_NOT_D_CHARS = re.compile(r"[^A-Z0-9_]+")
# The lines of xorriso's output that say what went wrong.
_PROBLEM = re.compile(r"fatal|failure|sorry|mismatch|cannot|no such", re.I)
# Names as UTF-8 whatever the locale; the whole image, every file, MD5-checked.
_COMMON = ("-abort_on", "FAILURE", "-local_charset", "UTF-8", "-md5", "on")
# Every data file against its recorded MD5 (a mismatch names the file), then the whole
# session (directories and all) against its own.
_CHECK_MD5 = ("-check_md5_r", "FAILURE", "/", "--", "-check_md5", "FAILURE", "--")

# xorriso's session checksum tag (images dockd wrote before UDF), near the image's end.
_MD5_TAG = b"libisofs_checksum_tag_v1"
_TAG_WINDOW = 4 << 20
BLOCK = 2048  # bytes in a block of an ISO 9660 image
_MANIFEST_ALGORITHMS = ("sha256", "sha512")

DAMAGED = "The image is damaged: do not burn or hand it over; make it again"


class DiscError(DockdError):
    """xorriso failed, the image did not read back, or the burn command failed."""

    exit_code = 74  # EX_IOERR


@dataclass(frozen=True)
class DiscImage:
    """A verified image: where, its volume id, size and hashes (for the audit trail)."""

    path: Path
    volume_id: str
    size: int
    blake3: str
    sha256: str

    def details(self) -> dict[str, object]:
        return {
            "iso": str(self.path),
            "iso_volume_id": self.volume_id,
            "iso_size_bytes": self.size,
            "iso_blake3": self.blake3,
            "iso_sha256": self.sha256,
        }


def volume_id(text: str, *, fallback: str = "DOCKD") -> str:
    """``text`` (a case number, a batch) as an ISO 9660 volume id: upper case, A-Z 0-9 _,
    at most 16 characters; ``fallback`` when nothing of it is left (e.g. all Chinese)."""
    vid = _NOT_D_CHARS.sub("_", text.upper()).strip("_")[:VOLID_MAX].rstrip("_")
    return vid or _NOT_D_CHARS.sub("_", fallback.upper())[:VOLID_MAX]


def make_image(src: Path, image: Path, *, volid: str, timeout: float = TIMEOUT_S) -> DiscImage:
    """Write the directory ``src`` (a bag) as a verified image at ``image`` (a new file).

    The image is written and verified as a hidden sibling and renamed to ``image`` only
    when it read back whole; an existing ``image`` is never replaced.
    """
    image = image.absolute()
    refuse_existing(image)
    tmp = temporary_name(image)
    try:
        made = write_image(src, tmp, volid=volid, timeout=timeout)
        publish(tmp, image)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return DiscImage(image, made.volume_id, made.size, made.blake3, made.sha256)


def refuse_existing(image: Path) -> None:
    if image.exists() or image.is_symlink():
        raise UsageError(f"{image} already exists; an image is never overwritten: name a new file")


def temporary_name(image: Path) -> Path:
    """Where an image is written before it is verified: hidden, beside its final name."""
    return image.with_name(f".{image.name}.partial-{uuid.uuid4().hex[:8]}")


def write_image(src: Path, image: Path, *, volid: str, timeout: float = TIMEOUT_S) -> DiscImage:
    """Write ``src`` as an ISO 9660 + Rock Ridge + Joliet + UDF image at ``image``, verify it."""
    if not src.is_dir():
        raise DiscError(f"cannot make a disc image of {src}: it is not a directory")
    image.parent.mkdir(parents=True, exist_ok=True)
    volid = volume_id(volid)
    try:
        udf.write(src, image, volid=volid)
    except udf.ImageFailed as exc:
        raise DiscError(
            f"writing the disc image {image} of {src} failed: {exc}. "
            "Rename or leave out what it names, then make the image again"
        ) from exc
    except OSError as exc:
        raise DiscError(
            f"writing the disc image {image} of {src} failed: {exc.strerror or exc}. "
            "Check the free space and the disk the image is written to"
        ) from exc
    verify_image(image, timeout=timeout)
    size, b3, sha = _hash(image)
    return DiscImage(image, volid, size, b3, sha)


def verify_image(image: Path, *, timeout: float = TIMEOUT_S) -> None:
    """Read ``image`` back as its receivers would: the bag from its Rock Ridge tree (by
    xorriso) and from its UDF tree each validated by bagit-python, the Joliet tree
    complete; an image written by xorriso also against its MD5s. Raises
    :class:`DiscError` naming the image and what did not match."""
    if md5_tagged(image):
        check_md5(image, timeout=timeout)
        _validated(image, "Rock Ridge", lambda out: _extract(image, "/", out, timeout))
        return
    rr = _validated(image, "Rock Ridge", lambda out: _extract(image, "/", out, timeout))
    with _reading(image, "its UDF and Joliet trees") as r:
        if not r.has_udf():
            raise DiscError(f"the disc image {image} has no UDF tree. {DAMAGED}")
        real = r.entries("udf")
        got = _validated(image, "UDF", lambda out: _copy_out(r, real, out))
        joliet = r.entries("joliet")
    if got != rr:
        raise DiscError(
            f"the UDF and Rock Ridge trees of the disc image {image} differ: "
            f"{_differ(got, rr)}. {DAMAGED}"
        )
    want = udf.joliet_of(real)
    if joliet != want:
        raise DiscError(
            f"the Joliet tree of the disc image {image} does not list the files of its UDF "
            f"tree: {_differ(joliet, want)}. {DAMAGED}"
        )


def check_image(image: Path, *, timeout: float = TIMEOUT_S) -> None:
    """The fixity sweep's check of a whole image, once per run: an image xorriso wrote
    against its MD5s (:func:`check_md5`), any other against the SHA-256 (or SHA-512)
    manifests of the bag in it, each file read from its UDF tree. Raises
    :class:`DiscError` naming the image and the file that did not match."""
    if md5_tagged(image):
        check_md5(image, timeout=timeout)
        return
    with _reading(image, "its files against the bag's manifests") as r:
        for rel, (alg, digest) in sorted(_manifests(image, r).items()):
            h = hashlib.new(alg)
            r.copy("/" + rel, _Hashing(h))
            if h.hexdigest() != digest:
                raise DiscError(f"{_mismatch(image, rel, alg)}. {DAMAGED}")


def check_md5(image: Path, *, timeout: float = TIMEOUT_S) -> None:
    """xorriso's read-back of an image it wrote: every file and the session against the
    MD5s recorded when it was written. Raises :class:`DiscError` naming what did not match."""
    _xorriso(
        [*_COMMON, "-indev", f"stdio:{image}", *_CHECK_MD5],
        what=f"reading back the disc image {image} (its MD5 checksums)",
        timeout=timeout,
        hint=DAMAGED,
    )


def md5_tagged(image: Path) -> bool:
    """Whether ``image`` carries xorriso's MD5 tags (written by dockd before it wrote
    UDF): its session tag starts a block after the files, before xorriso's 300 KiB of
    padding, and names that block (``pos=N``); the same words inside a file do not."""
    try:
        with open(image, "rb") as fh:
            start = max(fh.seek(0, os.SEEK_END) - _TAG_WINDOW, 0) // BLOCK * BLOCK
            fh.seek(start)
            tail = fh.read(_TAG_WINDOW)
    except OSError as exc:
        raise DiscError(f"cannot read the disc image {image}: {exc.strerror or exc}") from exc
    for at in range(0, len(tail), BLOCK):
        if tail.startswith(_MD5_TAG + b" pos=%d " % ((start + at) // BLOCK), at):
            return True
    return False


def extract_file(image: Path, inner: str, dest: Path, *, timeout: float = TIMEOUT_S) -> None:
    """Copy the file ``inner`` (an absolute path inside the image) out to ``dest`` (a new
    file) by xorriso, checked as it is read: by its MD5 in an image xorriso wrote, else
    by its SHA-256 (or SHA-512) in the bag's manifest on the image (the fixity sweep's
    check of an optical archive copy, and its source when the staged copy is gone)."""
    _extract(image, inner, dest, timeout)
    if md5_tagged(image):
        return
    rel = inner.lstrip("/")
    with _reading(image, f"the bag's manifest to check {inner}") as r:
        alg, digest = _manifests(image, r).get(rel) or (None, "")
    if alg is None:
        raise DiscError(f"{inner} is not in the manifests of the bag on the disc image {image}")
    h = hashlib.new(alg)
    with open(dest, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    if h.hexdigest() != digest:
        dest.unlink()
        raise DiscError(f"{_mismatch(image, rel, alg)}. {DAMAGED}")


def publish(tmp: Path, image: Path) -> None:
    """Give the verified ``tmp`` its name ``image``, atomically and never over a file."""
    try:
        os.link(tmp, image)
    except FileExistsError as exc:
        raise UsageError(
            f"{image} already exists; an image is never overwritten: name a new file"
        ) from exc
    tmp.unlink()
    log.info("disc.image", image=str(image))


def burn(command: Sequence[str], image: Path, *, timeout: float = TIMEOUT_S) -> str:
    """Run the configured burn command with ``{image}`` filled in; returns its output."""
    argv = render(tuple(command), image=str(image))
    return _run(argv, what=f"burning the disc image {image}", timeout=timeout)


# ----------------------------------------------------------------------------- reading


def _extract(image: Path, inner: str, dest: Path, timeout: float) -> None:
    """``inner`` (``/`` for all) copied out of the Rock Ridge tree of ``image`` by xorriso
    (an image it wrote: each file checked by its MD5 as it is read)."""
    _xorriso(
        [*_COMMON, "-osirrox", "on", "-indev", f"stdio:{image}", "-extract", inner, str(dest)],
        what=f"extracting {inner} from the disc image {image}",
        timeout=timeout,
        hint=DAMAGED,
    )


def _validated(image: Path, tree: str, fill: Callable[[Path], None]) -> dict[str, int | None]:
    """The bag read out of one tree of ``image`` by ``fill`` into a temporary directory
    beside it (removed afterwards), validated; what it held (path -> size, None for a
    directory)."""
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=image.parent) as tmp:
        out = Path(tmp) / "bag"
        try:
            fill(out)
            bag.validate(out)
            return {
                "/" + p.relative_to(out).as_posix(): None if p.is_dir() else p.stat().st_size
                for p in out.rglob("*")
            }
        except bag.BagFailed as exc:
            raise DiscError(
                f"the bag read back from the {tree} tree of the disc image {image} does not "
                f"validate: {exc}. {DAMAGED}"
            ) from exc
        finally:
            _writable(out)  # extracted read-only: let the temporary directory go


def _copy_out(r: udf.Reader, entries: dict[str, int | None], out: Path) -> None:
    """Every entry of the UDF tree (``entries``, as :meth:`udf.Reader.entries` lists it)
    read out into the new directory ``out``."""
    out.mkdir()
    for path, size in sorted(entries.items()):
        parts = path.split("/")[1:]
        if any(p in ("", ".", "..") for p in parts):
            raise DiscError(f"the UDF tree holds a name that is no file name: {path!r}")
        dest = out.joinpath(*parts)
        if size is None:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "xb") as fh:
            r.copy(path, fh)


@contextlib.contextmanager
def _reading(image: Path, what: str) -> Iterator[udf.Reader]:
    try:
        with udf.opened(image) as r:
            yield r
    except udf.ImageFailed as exc:
        raise DiscError(f"reading {what} from the disc image {image}: {exc}. {DAMAGED}") from exc


def _manifests(image: Path, r: udf.Reader) -> dict[str, tuple[str, str]]:
    """The bag's payload and tag manifests on ``image``, of the first of SHA-256 and
    SHA-512 it has: each file's path (``data/x``) -> (algorithm, hex digest)."""
    for alg in _MANIFEST_ALGORITHMS:
        out: dict[str, tuple[str, str]] = {}
        for name in (f"manifest-{alg}.txt", f"tagmanifest-{alg}.txt"):
            buf = io.BytesIO()
            try:
                r.copy("/" + name, buf)
            except udf.ImageFailed:
                continue
            for line in buf.getvalue().decode("utf-8", errors="replace").splitlines():
                digest, _, path = line.strip().partition(" ")
                if path.strip():
                    rel = path.strip().replace("%0A", "\n").replace("%0D", "\r")
                    out[rel] = (alg, digest.lower())
        if out:
            return out
    raise DiscError(
        f"the disc image {image} holds no bag with a SHA-256 or SHA-512 manifest, so its "
        f"files cannot be checked. {DAMAGED}"
    )


def _mismatch(image: Path, rel: str, alg: str) -> str:
    name = alg.upper().replace("SHA", "SHA-")
    return f"the disc image {image}: {rel} does not match its {name} in the bag's manifest"


def _differ(got: dict[str, int | None], want: dict[str, int | None]) -> str:
    keys = sorted(k for k in got.keys() | want.keys() if got.get(k, -1) != want.get(k, -1))
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return ", ".join(keys[:5]) + more


class _Hashing:
    """A writer that only hashes (a file read from the image, checked without a copy)."""

    def __init__(self, h: hashlib._Hash) -> None:
        self._h = h

    def write(self, data: bytes, /) -> int:
        self._h.update(data)
        return len(data)


# ----------------------------------------------------------------------------- running


def _xorriso(args: list[str], *, what: str, timeout: float, hint: str = "") -> str:
    return _run([XORRISO, *args], what=what, timeout=timeout, hint=hint)


def _run(argv: list[str], *, what: str, timeout: float, hint: str = "") -> str:
    env = {**os.environ, "LC_ALL": "C.UTF-8"}  # xorriso's messages in English, names UTF-8
    try:
        proc = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        hint = "apt install xorriso" if argv[0] == XORRISO else "check the command in the config"
        raise DiscError(f"{what}: {argv[0]} not found: {hint}") from exc
    except subprocess.TimeoutExpired as exc:
        raise DiscError(f"{what}: {argv[0]} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise DiscError(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}") from exc
    output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise DiscError(
            f"{what} failed ({argv[0]} exit {proc.returncode}): {_problems(output)}"
            + (f". {hint}" if hint else "")
        )
    return output


def _problems(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if _PROBLEM.search(ln)] or lines[-3:]
    return "; ".join(picked[-6:]) or "no output"


def _hash(path: Path) -> tuple[int, str, str]:
    b3, sha, size = blake3.blake3(), hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            b3.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return size, b3.hexdigest(), sha.hexdigest()


def _writable(root: Path) -> None:
    """Make an extracted tree removable (its directories may be read-only)."""
    if not root.is_dir():
        return
    with contextlib.suppress(OSError):
        root.chmod(0o700)
    for here, dirs, _files in os.walk(root):
        for d in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(here, d), 0o700)
