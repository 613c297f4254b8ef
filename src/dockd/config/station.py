"""``[station]``: who this dock belongs to, which clock the store's days follow, and
the language it writes for people.

The ledger keeps UTC; people read station time. :func:`local_text` is the one way a
time is written for a person (``2026-03-15 06:30``), here rather than in the output
module above because every layer writes times into messages (alerts, refusals).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from dockd.config.base import Section


class Language(StrEnum):
    """Language of what the station writes for people (column headers of CSV and tables)."""

    en = "en"
    zh = "zh"


def known_zone(value: str) -> str:
    """``value`` when it names an IANA time zone; ValueError saying what to write instead."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'"
        ) from exc
    return value


def as_utc(dt: datetime) -> datetime:
    """``dt`` as an aware UTC time; a naive one is UTC already (SQLite gives them back so)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def local_text(dt: datetime, tz: tzinfo, *, seconds: bool = False) -> str:
    """``dt`` in station time for a person: ``2026-03-15 06:30`` (``06:30:05`` with
    ``seconds``), no offset; a naive ``dt`` is read as UTC."""
    return as_utc(dt).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def mb(size_bytes: int | None) -> str:
    """A size for a person: ``12.3 MB`` (1 MB = 1,000,000 bytes, as on a card's label)."""
    if size_bytes is None:
        return ""
    return f"{size_bytes / 1_000_000:,.1f} MB"


_ISO_IN_TEXT = re.compile(
    r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}|Z)"
)


def localize_times(text: str, tz: tzinfo | None = None) -> str:
    """``text`` with every ISO 8601 time that carries an offset (``...T02:02:00+00:00``,
    as messages written by lower layers hold them) rewritten in station time ``tz``
    (None: the wall-clock time of the offset it carries, for text already in it)."""

    def one(m: re.Match[str]) -> str:
        try:
            at = datetime.fromisoformat(m.group(0))
        except ValueError:
            return m.group(0)
        return local_text(at, tz or at.tzinfo or UTC, seconds=bool(at.second or at.microsecond))

    return _ISO_IN_TEXT.sub(one, text)


def local_iso(dt: datetime, tz: tzinfo) -> str:
    """``dt`` as ISO 8601 with the station's offset (``2026-03-15T06:30:00+08:00``): the
    form JSON output gives machines (the same instant as UTC, readable as local)."""
    return as_utc(dt).astimezone(tz).isoformat()


class StationConfig(Section):
    """Who this dock belongs to, which clock the store's days follow, its language."""

    unit: str = "Unnamed unit"
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = "station-1"
    timezone: str = "Asia/Shanghai"
    language: Language = Language.en

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
