"""``[[naming]]``: how each recorder brand names its files, as RE2 patterns.

Patterns come from the config and names from an untrusted recorder: RE2 matches in
time linear in the name's length, so a crafted file name cannot hang a dock. This
is the only google-re2 import.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import PurePosixPath
from typing import Protocol, cast
from zoneinfo import ZoneInfo

import re2
from pydantic import field_validator, model_validator

from dockd.config.base import Section
from dockd.config.station import known_zone

NAMING_GROUPS = frozenset({"device", "serial", "badge", "timestamp", "seq"})


class NameMatch(Protocol):
    """What dockd uses of an RE2 match (the binding ships no type stubs)."""

    def span(self, group: int = 0) -> tuple[int, int]: ...

    def groupdict(self) -> dict[str, str | None]: ...


class NamePattern(Protocol):
    """What dockd uses of a compiled RE2 pattern."""

    @property
    def pattern(self) -> str: ...

    @property
    def groupindex(self) -> dict[str, int]: ...

    def match(self, text: str) -> NameMatch | None: ...


RE2_HELP = (
    "naming patterns use RE2 syntax (https://github.com/google/re2/wiki/Syntax), which "
    "matches in time linear in the name's length, so no pattern can hang the ingest on a "
    "crafted file name; it has no backreferences (\\1), lookahead or lookbehind ((?=, (?!, "
    "(?<=, (?<!), atomic groups, possessive quantifiers (a++), comments (?#...) or verbose "
    "mode (?x), and writes Python's \\Z as \\z"
)


@functools.lru_cache(maxsize=256)
def compile_naming(pattern: str) -> NamePattern:
    """Compile a naming pattern with RE2 (linear time); ValueError saying why it cannot be."""
    options = re2.Options()
    options.log_errors = False  # the error goes into our message, not onto stderr
    try:
        rx = re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0] if exc.args else "unknown error"
        if isinstance(why, bytes):
            why = why.decode("utf-8", "backslashreplace")
        raise ValueError(f"RE2 cannot compile this pattern ({why}); {RE2_HELP}") from None
    return cast(NamePattern, rx)


def _named_groups(rx: NamePattern) -> dict[str, int]:
    """The pattern's named groups; ValueError for a name used twice (RE2 keeps only one)."""
    groups = dict(rx.groupindex)
    twice = sorted(
        n for n in groups if rx.pattern.count(f"(?P<{n}>") + rx.pattern.count(f"(?<{n}>") > 1
    )
    if twice:
        raise ValueError(f"named group(s) {twice} appear more than once; name each group once")
    return groups


class NamingRule(Section):
    """How one recorder brand names its files: an RE2 regex with named groups."""

    name: str
    pattern: str
    timestamp_format: str | None = None
    timezone: str | None = None  # zone of the recorder's clock; default: the station's
    # Dates this brand's clock falls back to when reset (e.g. its firmware's build date),
    # beside [ingest] clock_reset_dates.
    reset_dates: tuple[date, ...] = ()
    # A file the recorder writes with its clock's time when docked, e.g. "SYSTEM/TIME.TXT",
    # its first line read with time_file_format (strptime) in the rule's timezone.
    time_file: str | None = None
    time_file_format: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        groups = _named_groups(compile_naming(value))
        unknown = sorted(set(groups) - NAMING_GROUPS)
        if unknown:
            raise ValueError(f"unknown named group(s) {unknown}; allowed: {sorted(NAMING_GROUPS)}")
        if not groups:
            raise ValueError("needs at least one named group, e.g. (?P<device>...)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            known_zone(value)
        return value

    @field_validator("time_file")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.strip() or value.startswith("/") or ".." in PurePosixPath(value).parts
        ):
            raise ValueError(f"{value!r} must be a path inside the recorder, without '..'")
        return value

    @property
    def zone(self) -> ZoneInfo | None:
        """The recorder's clock zone when the rule names one."""
        return ZoneInfo(self.timezone) if self.timezone is not None else None

    @model_validator(mode="after")
    def _format_needed(self) -> NamingRule:
        if "timestamp" in self.regex.groupindex and not self.timestamp_format:
            raise ValueError("pattern has a 'timestamp' group, so timestamp_format is required")
        if self.time_file_format is not None and self.time_file is None:
            raise ValueError("time_file_format is given but time_file is not: name the file")
        return self

    @property
    def regex(self) -> NamePattern:
        """The compiled RE2 pattern (compiled once per pattern text, then cached)."""
        return compile_naming(self.pattern)


DEFAULT_NAMING: tuple[NamingRule, ...] = (
    NamingRule(
        name="serial-badge-time-seq",
        pattern=r"^(?P<serial>[A-Za-z0-9]+)_(?P<badge>\d+)_(?P<timestamp>\d{14})_(?P<seq>\d+)$",
        timestamp_format="%Y%m%d%H%M%S",
    ),
    NamingRule(
        name="device-date-time-seq",
        pattern=r"^(?P<device>[A-Za-z0-9-]+)_(?P<timestamp>\d{8}_\d{6})_(?P<seq>\d+)$",
        timestamp_format="%Y%m%d_%H%M%S",
    ),
)
