"""``[station]``: who this dock belongs to and which clock the store's days follow."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from dockd.config.base import Section


def known_zone(value: str) -> str:
    """``value`` when it names an IANA time zone; ValueError saying what to write instead."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as 'Asia/Shanghai'"
        ) from exc
    return value


class StationConfig(Section):
    """Who this dock belongs to and which clock the store's days follow."""

    unit: str = "Unnamed unit"
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")] = "station-1"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
