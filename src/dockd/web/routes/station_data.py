"""What the station page shows, read without changing anything: the docks, alerts, sweeps
and health.

The docks come from the daemon's state file (``[dock] status_file``, written by
:class:`dockd.dock.status.StatusBoard`), as ``dockd status`` reads it; the health checks
are those of ``dockd health`` that the web can make from the layers below it. Both
readers live in ``dockd.cli`` today (``cli/status.py``, ``cli/health.py``), which the web
may not import, so the few lines they need are repeated here, reading the same facts:
the same file, the same columns, the same thresholds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger.db import Ledger, current_revision, head_revision
from dockd.ledger.models import Alert, Severity, SweepRun
from dockd.runtime import BOOT_ID, pid_alive
from dockd.sweeps.runs import RunStatus

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


def _live(doc: dict[str, Any]) -> bool:
    """The daemon that wrote the file says it runs, in this boot, and its process is
    alive (``dockd status`` also asks for the daemon lock; see the module's note)."""
    pid = doc.get("pid")
    return (
        doc.get("daemon") == "running"
        and doc.get("boot_id") == BOOT_ID
        and isinstance(pid, int)
        and pid_alive(pid)
    )


def read_docks(path: Path) -> Docks:
    """Every bay of the state file, or why it cannot be shown (never an exception)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Docks(
            problem=f"no dock status at {path}: dockd run has not written it. Is the daemon "
            "running (systemctl status dockd)? Does [dock] status_file name the same file?"
        )
    except (OSError, ValueError) as exc:
        return Docks(problem=f"cannot read the dock status {path}: {exc}")
    if not isinstance(doc, dict):
        return Docks(problem=f"{path} is not a dock status file (not a JSON object)")
    bays = [b for b in doc.get("bays") or [] if isinstance(b, dict)]
    return Docks(
        station=doc.get("station"),
        updated_at=doc.get("updated_at"),
        live=_live(doc),
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


def check_ledger(ledger: Ledger) -> Check:
    """The ledger answers and is at the schema this dockd needs."""
    try:
        have = current_revision(ledger.engine)
    except Exception as exc:  # any driver failure is the check's answer, not a 500
        return Check("ledger", False, f"the ledger cannot be read: {exc}")
    need = head_revision()
    if have != need:
        return Check(
            "ledger", False, f"the ledger is at schema {have}, dockd needs {need}: "
            "`dockd ledger migrate`",
        )  # fmt: skip
    return Check("ledger", True, f"reachable, at schema {need}")


def check_store(config: Config) -> Check:
    root = config.store.root
    if not root.is_dir():
        return Check("store", False, f"the store {root} is not there: is its disk mounted?")
    return Check("store", True, f"the store {root} is there")


def check_free_space(config: Config) -> Check:
    """The store's (and the quarantine's) filesystems above ``[metrics] min_free_percent``."""
    floor = config.metrics.min_free_percent
    found: list[str] = []
    low: list[str] = []
    for place, path in (("store", config.store.root), ("quarantine", config.store.quarantine_root)):
        try:
            vfs = os.statvfs(path)
        except OSError:
            continue  # a missing store is the store check's finding
        if vfs.f_blocks == 0:
            continue
        percent = 100.0 * vfs.f_bavail / vfs.f_blocks
        said = f"{place}: {percent:.1f}% free ({vfs.f_bavail * vfs.f_frsize / 1e9:.1f} GB)"
        (low if percent < floor else found).append(said)
    if low:
        return Check(
            "free_space", False, "; ".join(low) + f"; at least {floor:g}% must be free: make "
            "room (dockd sweep retention) or add disk",
        )  # fmt: skip
    return Check("free_space", True, "; ".join(found) + f"; at least {floor:g}% needed")


def check_alerts(session: Session, config: Config) -> Check:
    n = session.scalar(
        select(func.count(Alert.id)).where(
            Alert.station == config.station.id,
            Alert.severity == Severity.CRITICAL,
            Alert.acknowledged_at.is_(None),
        )
    )
    if not n:
        return Check("alerts", True, "no critical alert is open")
    return Check("alerts", False, f"{n} critical alert(s) open: see the alerts below")


def check_fixity(session: Session, config: Config, now: datetime) -> Check:
    """When the last fixity run succeeded (``dockd health`` also judges it against the
    schedule; that judgement lives in cli/health.py)."""
    last = session.scalar(
        select(func.max(SweepRun.ended_at)).where(
            SweepRun.station == config.station.id,
            SweepRun.kind == "fixity",
            SweepRun.status == RunStatus.OK,
        )
    )
    if last is None:
        return Check("fixity", True, "no fixity run yet")
    days = (now - last).total_seconds() / 86400
    ok = days <= config.fixity.cycle_days + 1
    return Check("fixity", ok, f"the last fixity run ended {days:.1f} days ago")


def check_daemon(docks: Docks) -> Check:
    """``dockd run`` is up, as its state file says (its process alive, this boot)."""
    if docks.live:
        return Check("daemon", True, "dockd run is running (its dock status is live)")
    why = docks.problem or f"its dock status is not live (last updated {docks.updated_at})"
    return Check("daemon", False, f"dockd run is not running: {why}; systemctl start dockd")


def health(
    session: Session, config: Config, ledger: Ledger, now: datetime, docks: Docks
) -> list[Check]:
    """The checks of ``dockd health``, in its order."""
    return [
        check_ledger(ledger),
        check_store(config),
        check_free_space(config),
        check_daemon(docks),
        check_fixity(session, config, now),
        check_alerts(session, config),
    ]


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
