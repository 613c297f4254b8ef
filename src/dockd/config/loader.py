"""Loading the TOML file into a :class:`Config`, and saying exactly what is wrong.

Unknown keys are errors: a typo in a policy key must never silently fall back to
a default. Every problem is reported with its key path and the line of the file
it stands on, all at once and in the order of the file, so an admin fixes the
file in one pass.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dockd.config.model import Config
from dockd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/dockd/dockd.toml")
CONFIG_ENV = "DOCKD_CONFIG"


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Make relative paths (store root, quarantine, sqlite file) relative to the config file."""
    store = data.get("store")
    if isinstance(store, dict):
        for key in ("root", "quarantine"):
            val = store.get(key)
            if isinstance(val, str) and val and not Path(val).is_absolute():
                store[key] = str(base / val)
    ledger = data.get("ledger")
    if isinstance(ledger, dict):
        url = ledger.get("url")
        if (
            isinstance(url, str)
            and url.startswith("sqlite:///")
            and not url.startswith("sqlite:////")
        ):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                ledger["url"] = "sqlite:///" + str(base / rel)


def key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """Map key paths to 1-based line numbers by a light scan of the TOML text.

    Handles ``[table]``, ``[[array.of.tables]]`` (indexed) and ``key = ...`` lines,
    which is what dockd's config uses; anything it cannot place falls back to the
    nearest enclosing table when reporting.
    """
    lines: dict[tuple[str | int, ...], int] = {}
    counters: dict[tuple[str, ...], int] = {}
    current: tuple[str | int, ...] = ()
    # Words separated by single runs of spaces: no two parts of the pattern can take
    # the same spaces, so a long run of them costs linear time, not cubic.
    header = re.compile(
        r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"']+(?: +[A-Za-z0-9_.\-\"']+)*)\s*\]\]?\s*(#.*)?$"
    )
    keyline = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]+\")\s*=")
    for number, raw in enumerate(text.splitlines(), start=1):
        m = header.match(raw)
        if m:
            parts = tuple(p.strip().strip("\"'") for p in m.group(2).split("."))
            if m.group(1) == "[[":
                idx = counters.get(parts, 0)
                counters[parts] = idx + 1
                current = (*parts, idx)
            else:
                current = parts
            lines.setdefault(current, number)
            continue
        k = keyline.match(raw)
        if k:
            lines.setdefault((*current, k.group(1).strip('"')), number)
    return lines


def _line_for(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _fmt_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TOML_AT = re.compile(
    r"^(?P<msg>.*) \("
    r"(?:at line (?P<line>\d+), column (?P<col>\d+)|(?P<end>at end of document))\)$"
)


def _toml_problem(message: str, text: str) -> str:
    """``line N: not valid TOML: ... (column C)`` from tomllib's message, line first."""
    m = _TOML_AT.match(message)
    if m is None:
        return f"not valid TOML: {message}"
    if m.group("end"):
        last = max(1, len(text.splitlines()))
        return f"line {last}: not valid TOML: {m.group('msg')} (at the end of the file)"
    return f"line {m.group('line')}: not valid TOML: {m.group('msg')} (column {m.group('col')})"


def decode_config(data: bytes, source: str) -> str:
    """The file's text; a file that is not UTF-8 is refused at the line of its first bad byte.

    A config saved as GBK (or Latin-1) by a local editor would otherwise be reported
    as a byte offset nobody can find in an editor.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        line_start = data.rfind(b"\n", 0, start) + 1
        column = len(data[line_start:start].decode("utf-8")) + 1
        raise ConfigError(
            source,
            [
                f"line {line}: not valid UTF-8 (byte 0x{data[start]:02X} at column {column}); "
                "save the file as UTF-8"
            ],
        ) from None


def parse_config(text: str, *, source: str = "<config>", base: Path | None = None) -> Config:
    """Parse and validate TOML text; raise :class:`ConfigError` listing every problem."""
    text = text.removeprefix("\ufeff")  # a byte-order mark (Windows editors) is not an error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_toml_problem(str(exc), text)]) from None
    except RecursionError:
        raise ConfigError(
            source,
            [
                "arrays or tables nested too deeply to read; "
                "a dockd config nests at most a few levels"
            ],
        ) from None
    if base is not None:
        _resolve_paths(data, base)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        problems: list[tuple[int, str]] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
            line = _line_for(loc, lines)
            where = f"line {line}: " if line else ""
            key = _fmt_loc(loc) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see config.example.toml for every key)"
            problems.append((line or 0, f"{where}{key}: {msg}"))
        # In the order of the file, so the admin fixes it top to bottom.
        raise ConfigError(source, [p for _, p in sorted(problems, key=lambda p: p[0])]) from None
    return cfg.model_copy(update={"source": Path(source) if base is not None else None})


def load_config(path: Path | None = None) -> Config:
    """Load the config from ``path``, ``$DOCKD_CONFIG`` or /etc/dockd/dockd.toml.

    A path that was asked for and does not exist is an error; when none was asked
    for and the default file is absent, the built-in defaults are used.
    """
    explicit = path is not None or bool(os.environ.get(CONFIG_ENV))
    chosen = path or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        data = chosen.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(
                str(chosen), ["file not found; copy config.example.toml there and edit it"]
            ) from None
        return Config()
    except OSError as exc:
        raise ConfigError(str(chosen), [f"cannot read: {exc}"]) from exc
    text = decode_config(data, str(chosen))
    return parse_config(text, source=str(chosen), base=chosen.resolve().parent)
