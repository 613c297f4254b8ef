"""Disc images of a bag (刻录光盘): the only module that runs xorriso, and the burn command.

Evidence exports (``dockd export ... --iso FILE``) and the archive's optical targets
hand footage over on disc. This module makes the image, reads it back, and runs the
configured burn command; nothing else in dockd runs ``xorriso``. Each run is a
subprocess with an argument list (never a shell), a timeout, its output captured and
named in the error, which says what to do.

The image is ISO 9660 with Rock Ridge (full POSIX names and modes, what Linux reads)
and Joliet (UTF-16 names, what Windows reads), written by Debian's ``xorriso``. Not
UDF: xorriso does not write UDF (its manual says so), and the one Debian tool that
does, ``mkudffs`` (udftools), only formats an empty UDF file system on a device or
file: adding the files needs the image loop-mounted read-write as root. ISO 9660 with
Joliet is read by every Windows, Linux and macOS machine a court or archive uses.

Names are written as UTF-8 whatever the daemon's locale (``-local_charset``): under
``LANG=C`` xorriso would otherwise mangle a Chinese file name in the Joliet tree.

An image is verified before it is used, the way a receiver would check it::

    write      xorriso -md5 on ... -map BAG /        MD5 of every file and of the session
    read back  xorriso -md5 on -indev IMG -check_md5_r FAILURE / -- -check_md5 FAILURE --
    extract    xorriso -osirrox on -indev IMG -extract / DIR   (each file checked by its MD5)
    validate   bagit-python on DIR: every payload and tag file re-hashed (SHA-256/512)

then hashed (BLAKE3 and SHA-256) for the audit trail. An image is written under a
hidden temporary name and gets its own only when verified, never over an existing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import blake3
import structlog

from dockd.config.dock import render
from dockd.errors import DockdError, UsageError
from dockd.evidence import bag

log = structlog.get_logger("dockd.evidence.disc")

XORRISO = "xorriso"
# A 25 GB BD-R image is written and read back three times at disk speed: hours, not days.
TIMEOUT_S = 6 * 3600.0
CHUNK = 1 << 20
VOLID_MAX = 32  # ISO 9660 volume identifier: at most 32 d-characters (A-Z, 0-9, _)
_NOT_D_CHARS = re.compile(r"[^A-Z0-9_]+")
# The lines of xorriso's output that say what went wrong.
_PROBLEM = re.compile(r"fatal|failure|sorry|mismatch|cannot|no such", re.I)
# Names as UTF-8 whatever the locale; the whole image, every file, MD5-checked.
_COMMON = ("-abort_on", "FAILURE", "-local_charset", "UTF-8", "-md5", "on")
# Every data file against its recorded MD5 (a mismatch names the file), then the whole
# session (directories and all) against its own.
_CHECK_MD5 = ("-check_md5_r", "FAILURE", "/", "--", "-check_md5", "FAILURE", "--")


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
    at most 32 characters; ``fallback`` when nothing of it is left (e.g. all Chinese)."""
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
    """Write ``src`` as an ISO 9660 + Rock Ridge + Joliet image at ``image``, verify it."""
    if not src.is_dir():
        raise DiscError(f"cannot make a disc image of {src}: it is not a directory")
    image.parent.mkdir(parents=True, exist_ok=True)
    _xorriso(
        [
            *_COMMON,
            "-outdev",
            f"stdio:{image}",
            "-volid",
            volid,
            "-joliet",
            "on",
            # Joliet names up to 103 characters (the standard's 64 would cut recorder
            # names); every Windows reads them.
            "-compliance",
            "joliet_long_names",
            "-map",
            str(src),
            "/",
            "-commit",
        ],
        what=f"writing the disc image {image} of {src}",
        timeout=timeout,
        hint="Check the free space and the disk the image is written to",
    )
    verify_image(image, timeout=timeout)
    size, b3, sha = _hash(image)
    return DiscImage(image, volid, size, b3, sha)


def verify_image(image: Path, *, timeout: float = TIMEOUT_S) -> None:
    """Read ``image`` back: session and file MD5s, then the bag extracted from it validated
    by bagit-python. Raises :class:`DiscError` naming what did not match."""
    check_md5(image, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=image.parent) as tmp:
        out = Path(tmp) / "bag"
        try:
            _xorriso(
                [*_COMMON, "-osirrox", "on", "-indev", f"stdio:{image}", "-extract", "/", str(out)],
                what=f"extracting the bag from the disc image {image}",
                timeout=timeout,
                hint=DAMAGED,
            )
            bag.validate(out)
        except bag.BagFailed as exc:
            raise DiscError(
                f"the bag read back from the disc image {image} does not validate: {exc}. "
                + DAMAGED
            ) from exc
        finally:
            _writable(out)  # extracted read-only: let the temporary directory go


def check_md5(image: Path, *, timeout: float = TIMEOUT_S) -> None:
    """xorriso's read-back of ``image``: every file and the session against the MD5s
    recorded when it was written. Raises :class:`DiscError` naming what did not match."""
    _xorriso(
        [*_COMMON, "-indev", f"stdio:{image}", *_CHECK_MD5],
        what=f"reading back the disc image {image} (its MD5 checksums)",
        timeout=timeout,
        hint=DAMAGED,
    )


def extract_file(image: Path, inner: str, dest: Path, *, timeout: float = TIMEOUT_S) -> None:
    """Copy the file ``inner`` (an absolute path inside the image) out to ``dest`` (a new
    file), checked by its recorded MD5 as xorriso reads it (the fixity sweep's check of
    an optical archive copy, and its source when the staged copy is gone)."""
    _xorriso(
        [*_COMMON, "-osirrox", "on", "-indev", f"stdio:{image}", "-extract", inner, str(dest)],
        what=f"extracting {inner} from the disc image {image}",
        timeout=timeout,
        hint=DAMAGED,
    )


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
