"""FAT32 card images whose short names are GBK bytes, as a Chinese-locale recorder writes them.

mtools cannot write such names (its code pages are single-byte: ``mcopy`` with code
page 936 turns every Chinese character into ``_``), and this machine's kernel has no
vfat driver to write them through. So the image is made the way the bytes end up on
a real card: ``mkfs.vfat`` makes a real FAT32 filesystem, ``mcopy`` writes each file
under an ASCII 8.3 placeholder (an upper-case 8.3 name gets no long-name entry), and
the placeholder's 11 name bytes in its directory entry are then replaced by the GBK
bytes. ``fsck.vfat -n`` must accept the result.

:func:`mounted` reads the card as the dock does on a kernel without vfat: a read-only
loop device and the ``fusefat`` helper with dockd's default read-only options
(``dockd.config.dock.DEFAULT_HELPERS``).

One limit of ``fusefat`` 0.1a (libfat ``find_direntry`` compares names with a UTF-8
case-folding compare that rejects any byte sequence that is not UTF-8): it *lists* a
GBK short name but cannot look it up, so ``stat``/``open`` of it fail with ENOENT.
:func:`opens_by_name` tells a test whether the mount at hand has that limit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

MiB = 1024 * 1024
TOOLS = ("mkfs.vfat", "mcopy", "mmd", "fsck.vfat", "losetup", "fusefat", "umount")
_ENV = {**os.environ, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MTOOLS_SKIP_CHECK": "1"}
_DELETED = 0xE5  # a first name byte of 0xE5 marks a deleted entry; FAT stores it as 0x05


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=_ENV, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
    return proc


def _short_entry(name: bytes) -> bytes:
    """The 11 bytes of an 8.3 directory entry name (base padded to 8, extension to 3)."""
    base, dot, ext = name.rpartition(b".")
    if not dot:
        base, ext = name, b""
    if not base or len(base) > 8 or len(ext) > 3:
        raise ValueError(f"{name!r} is not an 8.3 name")
    if b" " in name or any(b < 0x20 for b in name) or name.upper() != name:
        raise ValueError(f"{name!r} has a space, a control byte or lower-case ASCII")
    entry = base.ljust(8, b" ") + ext.ljust(3, b" ")
    return (b"\x05" + entry[1:]) if entry[0] == _DELETED else entry


def gbk_card(image: Path, files: Mapping[bytes, bytes], *, label: str, size_mb: int = 64) -> Path:
    """A FAT32 image holding ``files`` (relative path bytes -> content).

    Directory names must be ASCII; a file name that is not ASCII must be an 8.3
    name in GBK (it is stored as a short name only, as a recorder writing 8.3 names
    in the GBK code page does). ASCII names may be long (mtools writes a long-name
    entry for them).
    """
    with image.open("wb") as fh:
        fh.truncate(size_mb * MiB)
    _run(["mkfs.vfat", "-F", "32", "-n", label, str(image)])
    staging = image.with_name(image.name + ".staging")
    staging.mkdir()
    made: set[bytes] = set()
    patches: list[tuple[bytes, bytes]] = []
    for n, (rel, data) in enumerate(sorted(files.items())):
        *dirs, name = rel.split(b"/")
        for i in range(1, len(dirs) + 1):
            sub = b"/".join(dirs[:i])
            if sub not in made:
                _run(["mmd", "-i", str(image), "::/" + sub.decode("ascii")])
                made.add(sub)
        if name.isascii():
            target = name.decode("ascii")
        else:
            _, dot, ext = name.rpartition(b".")
            placeholder = f"Q{n:07d}" + ("." + ext.decode("ascii") if dot else "")
            patches.append((_short_entry(placeholder.encode("ascii")), _short_entry(name)))
            target = placeholder
        src = staging / f"{n:07d}.bin"
        src.write_bytes(data)
        dest = "::/" + "/".join([*(d.decode("ascii") for d in dirs), target])
        _run(["mcopy", "-i", str(image), str(src), dest])
        src.unlink()
    staging.rmdir()
    if patches:
        raw = bytearray(image.read_bytes())
        for old, new in patches:
            at = raw.find(old)
            if at < 0 or raw.find(old, at + 1) >= 0:
                raise RuntimeError(f"placeholder {old!r} is not in the image exactly once")
            if raw[at - 32 + 11] == 0x0F:  # the entry before it is a long-name entry
                raise RuntimeError(f"mcopy wrote a long name for {old!r}; it must be 8.3 only")
            raw[at : at + 11] = new
        image.write_bytes(bytes(raw))
    _run(["fsck.vfat", "-n", str(image)])
    return image


@contextlib.contextmanager
def mounted(image: Path, mountpoint: Path) -> Iterator[Path]:
    """The image on a read-only loop device, mounted read-only with ``fusefat``."""
    dev = _run(["losetup", "--find", "--show", "--read-only", str(image)]).stdout.strip()
    try:
        mountpoint.mkdir(parents=True, exist_ok=True)
        _run(["fusefat", "-o", f"ro,nosuid,nodev,noexec,fsname={dev}", dev, str(mountpoint)])
        try:
            yield mountpoint
        finally:
            if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode:
                subprocess.run(["umount", "--lazy", str(mountpoint)], capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


def opens_by_name(path: bytes) -> bool:
    """Can the mount look this name up (not only list it)?"""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    os.close(fd)
    return True
