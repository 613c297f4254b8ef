"""What the station page shows, read without changing anything: the docks, alerts, sweeps
and health.

The docks come from the daemon's state file (``[dock] status_file``, written by
:class:`dockd.dock.status.StatusBoard`) and the health checks are ``dockd health``'s,
both read through :mod:`dockd.daemon.health` as the CLI reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.daemon.health import health as station_health
from dockd.daemon.health import read_status
from dockd.errors import DockdError
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert, SweepRun

RECENT_ALERTS = 20
RECENT_SWEEPS = 10


@dataclass(frozen=True)
class Docks:
    """The state file as the page shows it; ``problem`` when there is none to show."""

    station: str | None = None
    updated_at: str | None = None
    live: bool = False
    bays: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None


def read_docks(path: Path) -> Docks:
    """Every bay of the state file, or why it cannot be shown (never an exception)."""
    try:
        doc = read_status(path)
    except DockdError as exc:
        return Docks(problem=str(exc))
    bays = [b for b in doc.get("bays") or [] if isinstance(b, dict)]
    return Docks(
        station=doc.get("station"),
        updated_at=doc.get("updated_at"),
        live=not doc["stale"],
        bays=bays,
    )


def progress(bay: dict[str, Any]) -> str:
    """``3/10 files`` and, while copying, a percentage of the bytes."""
    total = bay.get("files_total")
    if total is None:
        return ""
    out = f"{bay.get('files_done', 0)}/{total}"
    size = bay.get("bytes_total")
    if bay.get("state") == "copying" and size:
        out += f" ({100 * (bay.get('bytes_done') or 0) / size:.0f}%)"
    return out


# ---------------------------------------------------------------------- health


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


def health(config: Config, ledger: Ledger, now: datetime) -> list[Check]:
    """The checks of ``dockd health``, in its order, on the web view's open ledger."""
    checks = station_health(config, now, ledger=ledger)
    return [Check(name, c.ok, c.reason) for name, c in checks.items()]


# ---------------------------------------------------------------------- rows


def recent_alerts(session: Session, config: Config) -> list[Alert]:
    q = (
        select(Alert)
        .where(Alert.station == config.station.id)
        .order_by(Alert.acknowledged_at.is_not(None), Alert.id.desc())
        .limit(RECENT_ALERTS)
    )
    return list(session.scalars(q))


def recent_sweeps(session: Session, config: Config) -> list[dict[str, Any]]:
    """The last runs, each with its summary's figures as ``key: value`` words."""
    q = (
        select(SweepRun)
        .where(SweepRun.station == config.station.id)
        .order_by(SweepRun.id.desc())
        .limit(RECENT_SWEEPS)
    )
    out = []
    for run in session.scalars(q):
        try:
            summary = json.loads(run.summary) if run.summary else {}
        except ValueError:
            summary = {}
        shown = {
            k: v
            for k, v in (summary.items() if isinstance(summary, dict) else ())
            if isinstance(v, int | float | str) and k not in ("host", "pid", "boot_id")
        }
        out.append({"run": run, "summary": ", ".join(f"{k}: {v}" for k, v in shown.items())})
    return out
