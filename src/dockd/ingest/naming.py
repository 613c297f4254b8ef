"""Filename rules: what a recorder brand's file names say about a recording.

Rules come from ``[[naming]]`` in the config, tried in order; the first whose
regex matches the file's stem wins. A new brand needs a config entry, not code.

Patterns are RE2 (linear time), so a crafted pattern or file name cannot hang the
ingest. A name that is not valid UTF-8 reaches us with surrogate escapes, which
RE2 cannot take: each is matched as U+FFFD (one character for one, so ``.`` and
``[^_]`` match it, ``\\w`` and ``[0-9]`` do not) and the groups are cut from the
original name, escapes kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from zoneinfo import ZoneInfo

from dockd.config.naming import NamingRule

# Lone surrogates (os.fsdecode's escapes of undecodable bytes); a fixed class, no backtracking.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class NameInfo:
    rule: str
    device: str | None = None
    serial: str | None = None
    badge: str | None = None
    timestamp: datetime | None = None
    seq: str | None = None


def parse_name(
    relpath: PurePosixPath, rules: Sequence[NamingRule], default_tz: ZoneInfo
) -> NameInfo | None:
    """Apply the first matching rule to the file's stem; None when no rule matches.

    A timestamp that matches the regex but not the format (e.g. month 13) leaves
    ``timestamp`` empty rather than failing: the next time source is used.
    """
    stem = relpath.stem
    subject = stem if stem.isascii() else _SURROGATE.sub("\ufffd", stem)
    for rule in rules:
        rx = rule.regex
        m = rx.match(subject)
        if m is None:
            continue
        groups: dict[str, str] = {}
        for name, index in rx.groupindex.items():
            start, end = m.span(index)
            if 0 <= start < end:  # a group that took part and matched something
                groups[name] = stem[start:end]
        ts: datetime | None = None
        if "timestamp" in groups and rule.timestamp_format:
            try:
                naive = datetime.strptime(groups["timestamp"], rule.timestamp_format)
            except ValueError:
                naive = None
            if naive is not None:
                zone = ZoneInfo(rule.timezone) if rule.timezone else default_tz
                ts = naive.replace(tzinfo=zone) if naive.tzinfo is None else naive
        return NameInfo(
            rule=rule.name,
            device=groups.get("device"),
            serial=groups.get("serial"),
            badge=groups.get("badge"),
            timestamp=ts,
            seq=groups.get("seq"),
        )
    return None
