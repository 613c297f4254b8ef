"""What every report is: a name, a title, columns and rows, built from the ledger alone.

A report is a function ``(session, config, period, now) -> Report``; the CLI
(``dockd report NAME``) renders it as a table, CSV or JSON. Times in rows are
ISO 8601 in the station's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute, Session

from dockd.config import Config


@dataclass(frozen=True)
class Period:
    """``[start, end)``; either end open (None)."""

    start: datetime | None = None
    end: datetime | None = None

    def where(self, column: InstrumentedAttribute[datetime] | Any) -> list[ColumnElement[bool]]:
        """SQL conditions putting ``column`` inside the period."""
        out: list[ColumnElement[bool]] = []
        if self.start is not None:
            out.append(column >= self.start)
        if self.end is not None:
            out.append(column < self.end)
        return out


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


ReportFn = Callable[[Session, Config, Period, datetime], Report]


def columns(names: str) -> tuple[str, ...]:
    """A report's columns in order, named once: ``columns("id device officer")``."""
    return tuple(names.split())


def iso(ts: datetime | None, tz: ZoneInfo) -> str | None:
    return ts.astimezone(tz).isoformat(timespec="seconds") if ts is not None else None
