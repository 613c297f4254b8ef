#!/usr/bin/env python3
"""Fuzz target: the recorder ID-file parser, on any bytes a recorder could hold.

``dockd.ingest.identify.parse_id_file(data)`` must never raise; it returns only the
keys ``serial`` and ``device``, each a non-empty string without NUL or any other
control character (Unicode category Cc) that encodes as UTF-8.

    fuzz/fuzz_id_file.py [libFuzzer options] [CORPUS_DIR ... | CRASH_FILE]
"""

from __future__ import annotations

import sys
import unicodedata

import atheris  # type: ignore[import-untyped]
from _harness import guarded, require

with atheris.instrument_imports(include=["dockd"]):
    from dockd.ingest.identify import parse_id_file

KEYS = frozenset({"serial", "device"})


def check(data: bytes) -> None:
    out = parse_id_file(data)
    require(isinstance(out, dict), "returns a dict", type(out))
    for key, value in out.items():
        require(key in KEYS, "keys are only serial/device", key, value)
        require(isinstance(value, str) and value != "", "value is a non-empty str", key, value)
        require("\x00" not in value, "value has no NUL", key, value)
        controls = [c for c in value if unicodedata.category(c) == "Cc"]
        require(not controls, "value has no control character", key, value, controls)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            require(False, "value encodes as UTF-8", key, value, str(exc))


def TestOneInput(data: bytes) -> None:
    guarded(check, data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
