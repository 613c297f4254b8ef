"""File names as a recorder's filesystem holds them: bytes, not text.

A FAT card written by a Chinese-locale recorder holds GBK (GB18030) names; Linux
hands them over undecoded, and Python carries them as surrogate escapes. dockd
keeps three forms of every name:

- ``raw``: the exact bytes (lossless; re-docking matches on them);
- ``display``: what a person reads: UTF-8 when the bytes are UTF-8, else GB18030
  when they decode as that, else UTF-8 with every undecodable byte as ``\\xNN``;
- the store name, made from the display name by ``store.paths.safe_component``: always
  valid UTF-8.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath


def raw_of(relpath: PurePosixPath | str) -> bytes:
    """The exact bytes of a path that ``os.scandir`` returned as ``str``."""
    return os.fsencode(str(relpath))


def decode_component(raw: bytes) -> str:
    """The display form of one name (no ``/`` inside)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")
    if any(ord(c) < 0x20 or 0xE000 <= ord(c) <= 0xF8FF for c in text):
        # control characters or private-use code points: GB18030 was a guess too far
        return raw.decode("utf-8", "backslashreplace")
    return text


def display(raw: bytes) -> str:
    """The display form of a relative path, decoded one component at a time."""
    return "/".join(decode_component(part) for part in raw.split(b"/"))
