"""Where a recording goes in the store: the path template and safe path components.

Pure functions of values: a person's and a recorder's names become one readable
path component each that cannot climb out of its directory, and the configured
template (``{year}/{month}/{day}/{device}/{name}`` ...) becomes a store-relative path.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from pathlib import PurePosixPath

MAX_NAME_BYTES = 200  # leaves room for a collision suffix within NAME_MAX (255)

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def safe_component(name: str, *, fallback: str = "unnamed") -> str:
    """One path component that cannot climb out of its directory.

    Keeps the name readable (Chinese names stay Chinese), replaces separators and
    control characters, strips leading dots (no hidden files, no ``..``) and
    trims to a byte length every filesystem accepts.
    """
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE.sub("_", name).strip()
    # No hidden files and no "..": leading dots become "_", so "..mp4" keeps its
    # extension as "_.mp4" instead of losing it.
    if set(name) <= {"."}:
        name = ""
    elif name.startswith("."):
        stem, _, ext = name.rpartition(".")
        # ".hidden.mp4" -> "_hidden.mp4"; "..mp4" -> "_.mp4"
        name = "_" + name.lstrip(".") if stem.strip(".") or not ext else "_." + ext
    if not name or set(name) <= {"."}:
        name = fallback
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        keep_ext = f".{ext}" if dot and len(ext) <= 8 else ""
        body = (stem if keep_ext else name).encode("utf-8")
        budget = MAX_NAME_BYTES - len(keep_ext.encode("utf-8"))
        name = body[:budget].decode("utf-8", "ignore") + keep_ext
    return name


def render_path(
    template: str,
    *,
    local_time: datetime,
    device: str,
    badge: str | None,
    station: str,
    source_name: str,
    kind: str,
) -> PurePosixPath:
    """The store-relative path of a recording, from the configured template.

    ``local_time`` must already be in the station's time zone: the day folders
    follow the station's calendar (R4).
    """
    name = safe_component(source_name)
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    values = {
        "year": f"{local_time.year:04d}",
        "month": f"{local_time.month:02d}",
        "day": f"{local_time.day:02d}",
        "hour": f"{local_time.hour:02d}",
        "minute": f"{local_time.minute:02d}",
        "second": f"{local_time.second:02d}",
        "device": safe_component(device, fallback="unknown-device"),
        "badge": safe_component(badge or "unknown", fallback="unknown"),
        "station": safe_component(station),
        "stem": stem,
        "ext": f".{ext}" if ext else "",
        "name": name,
        "kind": kind,
    }
    rendered = template.format(**values)
    parts = [p for p in rendered.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        raise ValueError(f"path template produced an unsafe path {rendered!r}")
    return PurePosixPath(*parts)
