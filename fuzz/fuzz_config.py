#!/usr/bin/env python3
"""Fuzz target: the configuration loader, on any text an admin could write.

``dockd.config.parse_config(text)`` either returns a ``Config`` or raises
``dockd.errors.ConfigError`` (which ``dockd config check`` prints as a list of
problems); any other exception is a crash. Each input is loaded twice: as is, and
with ``base`` set the way ``load_config`` sets it for a file, which also resolves
relative store, quarantine and SQLite paths.

The input bytes are decoded as UTF-8 with undecodable bytes replaced (``load_config``
refuses a file that is not UTF-8 before parsing, so only text reaches the parser).

    fuzz/fuzz_config.py [libFuzzer options] [CORPUS_DIR ... | CRASH_FILE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]
from _harness import guarded, require

with atheris.instrument_imports(include=["dockd", "tomllib", "re2"]):
    from dockd.config import Config, parse_config
    from dockd.errors import ConfigError

BASE = Path("/tmp/fuzzbase")  # noqa: S108 (never touched: only joined to relative paths)


def load(text: str, *, with_base: bool) -> Config:
    if with_base:
        return parse_config(text, source="x", base=BASE)
    return parse_config(text)


def check(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for with_base in (False, True):
        try:
            cfg = load(text, with_base=with_base)
        except ConfigError as exc:
            require(bool(exc.problems), "a ConfigError lists its problems", with_base, exc)
            continue
        require(isinstance(cfg, Config), "parse_config returns a Config", with_base, type(cfg))


def TestOneInput(data: bytes) -> None:
    guarded(check, data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
