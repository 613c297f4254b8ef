#!/usr/bin/env python3
"""Fuzz target: file names from a recorder, as raw bytes, through every name function.

The input is the raw bytes of a path on the recorder (``/`` separates folders; a
FAT card of a Chinese-locale recorder holds GBK bytes). The name as Python sees it
is ``os.fsdecode(raw)``, as ``os.scandir`` would give it. Properties:

- ``dockd.ingest.naming.parse_name`` with ``dockd.config.naming.DEFAULT_NAMING`` and with the
  ``[[naming]]`` rules of ``config.example.toml`` never raises, and returns None or a
  ``NameInfo`` of one of those rules whose groups are non-empty pieces of the file's
  stem and whose timestamp, if any, carries a UTC offset;
- ``dockd.ingest.names.display(raw)`` returns a str that encodes as UTF-8 and has
  exactly the path's ``/`` separators (decoding never makes or eats a folder);
- ``dockd.store.paths.safe_component`` of that display name (and of the display of the
  last component alone, which is what a stored file is named after) is non-empty
  valid UTF-8 without ``/`` or NUL, is not ``.`` or ``..``, and is at most 200 bytes.

    fuzz/fuzz_names.py [libFuzzer options] [CORPUS_DIR ... | CRASH_FILE]
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import atheris  # type: ignore[import-untyped]
from _harness import guarded, require

with atheris.instrument_imports(include=["dockd", "re2", "_strptime"]):
    importlib.import_module("_strptime")  # what datetime.strptime runs (imported lazily)
    from dockd.config import Config, parse_config
    from dockd.config.naming import DEFAULT_NAMING, NamingRule
    from dockd.ingest.names import display
    from dockd.ingest.naming import NameInfo, parse_name
    from dockd.store.paths import safe_component

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
MAX_NAME_BYTES = 200


def _rule_sets() -> list[tuple[str, Sequence[NamingRule], ZoneInfo]]:
    example = parse_config(EXAMPLE.read_text(encoding="utf-8"), source=str(EXAMPLE))
    return [
        ("DEFAULT_NAMING", DEFAULT_NAMING, Config().station.tz),
        ("config.example.toml", example.naming, example.station.tz),
    ]


RULE_SETS = _rule_sets()


def check_parse(raw: bytes, relpath: PurePosixPath) -> None:
    stem = relpath.stem
    for label, rules, tz in RULE_SETS:
        info = parse_name(relpath, rules, tz)
        if info is None:
            continue
        require(isinstance(info, NameInfo), "parse_name returns NameInfo or None", label, raw)
        require(info.rule in {r.name for r in rules}, "NameInfo names a rule", label, raw, info)
        for field in ("device", "serial", "badge", "seq"):
            value = getattr(info, field)
            require(
                value is None or (isinstance(value, str) and value != "" and value in stem),
                f"{field} is None or a non-empty piece of the stem",
                label,
                raw,
                info,
            )
        ts = info.timestamp
        require(
            ts is None or (isinstance(ts, datetime) and ts.utcoffset() is not None),
            "timestamp is None or carries a UTC offset",
            label,
            raw,
            info,
        )


def check_safe(raw: bytes, shown: str) -> None:
    safe = safe_component(shown)
    require(isinstance(safe, str) and safe != "", "safe_component is non-empty", raw, safe)
    try:
        size = len(safe.encode("utf-8"))
    except UnicodeEncodeError as exc:
        require(False, "safe_component is valid UTF-8", raw, safe, str(exc))
        return
    require("/" not in safe, "safe_component has no '/'", raw, safe)
    require("\x00" not in safe, "safe_component has no NUL", raw, safe)
    require(safe not in (".", ".."), "safe_component is not '.' or '..'", raw, safe)
    require(size <= MAX_NAME_BYTES, "safe_component is at most 200 bytes", raw, safe, size)


def check(raw: bytes) -> None:
    relpath = PurePosixPath(os.fsdecode(raw))
    check_parse(raw, relpath)

    shown = display(raw)
    require(isinstance(shown, str), "display returns str", raw, shown)
    try:
        shown.encode("utf-8")
    except UnicodeEncodeError as exc:
        require(False, "display encodes as UTF-8", raw, shown, str(exc))
    require(shown.count("/") == raw.count(b"/"), "display keeps the path's '/'", raw, shown)

    check_safe(raw, shown)
    check_safe(raw, display(raw.rsplit(b"/", 1)[-1]))


def TestOneInput(data: bytes) -> None:
    guarded(check, data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
