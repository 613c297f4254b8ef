"""``dockd health``: is this station fit to take footage? Exit 0 when so, 1 when not.

For monitoring (a Nagios check, a systemd timer, a load balancer): one JSON object
on stdout whatever happens, each check named with ``ok`` and a reason a person can
act on::

    ledger      reachable and at the schema this dockd needs (never created here)
    store       the store directory is there; writable (as root) or readable
    free_space  the store's and the quarantine's filesystems above [metrics]
                min_free_percent
    daemon      a `dockd run` holds the machine's daemon lock
    fixity      the last successful fixity run is younger than its schedule allows
    alerts      no critical alert is open

A config that cannot be loaded is one failed ``config`` check. The command only
reads: an SQLite ledger that is not there is reported, not created.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from sqlalchemy import func, select

from dockd.cli.common import App, app_of
from dockd.config import Config
from dockd.config.ledger import sqlite_file
from dockd.daemon.scheduler import cron_trigger
from dockd.daemon.service import LOCK_NAME
from dockd.errors import DockdError
from dockd.ledger.db import Ledger, head_revision, open_ledger
from dockd.ledger.failures import shown_url
from dockd.ledger.models import Alert, DockSession, Severity, SweepRun
from dockd.runtime import RUNTIME_ENV, SYSTEM_RUNTIME_DIR, FileLock, pid_alive
from dockd.sweeps.runs import RunStatus

# A fixity run may start late (misfire grace, a busy machine) and takes hours on a
# big store: it counts as on time until a day after the next one was due.
FIXITY_SLACK = timedelta(days=1)
_MAX_FIRINGS = 2000  # of a schedule, looked at to find its longest gap


@dataclass
class Check:
    ok: bool
    reason: str


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB"


def _days(delta: timedelta) -> str:
    """A span as a person says it: 40 minutes, 26 hours, 3.5 days."""
    seconds = delta.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} hours"
    days = seconds / 86400
    return f"{days:.1f} days" if days < 10 else f"{days:.0f} days"


def _local(config: Config, at: datetime) -> str:
    """A time as the station reads it."""
    return at.astimezone(config.station.tz).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- the checks


def check_ledger(config: Config) -> tuple[Check, Ledger | None]:
    """Open the ledger without creating it; it must be at the head migration."""
    url = config.ledger.url
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return Check(
            False,
            f"no ledger at {path}: dockd has not run on this station yet, or [ledger] url "
            "points elsewhere (nothing was created)",
        ), None
    try:
        ledger = open_ledger(url, create=False, group=None)
    except DockdError as exc:
        return Check(False, str(exc)), None
    return Check(True, f"{shown_url(url)} at schema {head_revision()}"), ledger


def check_store(config: Config) -> Check:
    root = config.store.root
    if not root.is_dir():
        return Check(False, f"the store {root} is not there: is its disk mounted?")
    if os.access(root, os.W_OK | os.X_OK):
        return Check(True, f"the store {root} is there and writable")
    if os.geteuid() != 0 and os.access(root, os.R_OK | os.X_OK):
        return Check(
            True,
            f"the store {root} is there and readable (this user may not write it; run "
            "dockd health as root to check that dockd can)",
        )
    return Check(False, f"the store {root} is not writable: read-only filesystem or ownership?")


def check_free_space(config: Config) -> Check:
    floor = config.metrics.min_free_percent
    store = config.store
    problems: list[str] = []
    found: list[str] = []
    for place, path in (("store", store.root), ("quarantine", store.quarantine_root)):
        try:
            vfs = os.statvfs(path)
        except OSError as exc:
            if place == "store":
                problems.append(f"store {path}: cannot measure ({exc.strerror})")
            continue  # the quarantine is made at the first unregistered recorder
        if vfs.f_blocks == 0:
            continue
        free = vfs.f_bavail * vfs.f_frsize
        percent = 100.0 * vfs.f_bavail / vfs.f_blocks
        said = f"{place} {path}: {percent:.1f}% free ({_gb(free)})"
        (problems if percent < floor else found).append(said)
    if problems:
        return Check(
            False,
            "; ".join(problems) + f"; at least {floor:g}% must be free ([metrics] "
            "min_free_percent): make room (dockd sweep retention, dockd trash purge) or add disk",
        )
    return Check(True, "; ".join(found) + f"; at least {floor:g}% needed")


def _runtime_dirs() -> list[Path]:
    """Where a `dockd run` may keep its lock, as :func:`dockd.runtime.runtime_dir` chooses
    it, but only looked at: the daemon's directory may be one this user cannot write."""
    env = os.environ.get(RUNTIME_ENV)
    if env:
        return [Path(env)]
    dirs = [SYSTEM_RUNTIME_DIR]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        dirs.append(Path(xdg) / "dockd")
    return [*dirs, Path(tempfile.gettempdir()) / f"dockd-{os.getuid()}"]


def check_daemon() -> Check:
    """Someone holds the daemon lock: try a shared lock on it, never the file's content."""
    unreadable = []
    for directory in _runtime_dirs():
        path = directory / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            unreadable.append(f"{path} ({exc.strerror})")
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = FileLock(path).holder()
            if pid is not None and pid_alive(pid):
                return Check(True, f"dockd run is running (PID {pid}, holds {path})")
            return Check(True, f"dockd run is running (holds {path})")
        finally:
            os.close(fd)
    if unreadable:
        return Check(
            False,
            f"cannot tell: {', '.join(unreadable)} cannot be read by this user; run dockd "
            "health as root",
        )
    return Check(
        False,
        "no dockd run holds the daemon lock: the daemon is not running (systemctl start dockd)",
    )


def fixity_allowance(config: Config, now: datetime) -> tuple[timedelta, str]:
    """How old the last fixity run may be: the longest wait between two runs of its
    schedule (looked at over the coming year) and a day; ``cycle_days`` when it is off."""
    expr = config.schedule.fixity
    if not expr:
        days = config.fixity.cycle_days
        why = f"the fixity schedule is off: [fixity] cycle_days = {days}"
        return timedelta(days=days), why
    trigger = cron_trigger(expr, config)
    longest, previous = timedelta(0), trigger.get_next_fire_time(None, now)
    end = now + timedelta(days=366)
    for _ in range(_MAX_FIRINGS):
        if previous is None or previous > end:
            break
        following = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        if following is None:
            break
        longest = max(longest, following - previous)
        previous = following
    allowed = longest + FIXITY_SLACK
    return allowed, f"schedule {expr!r} runs at least every {_days(longest)}"


def check_fixity(config: Config, ledger: Ledger, now: datetime) -> Check:
    allowed, why = fixity_allowance(config, now)
    station = config.station.id
    with ledger.read() as s:
        last = s.scalar(
            select(func.max(SweepRun.ended_at)).where(
                SweepRun.station == station,
                SweepRun.kind == "fixity",
                SweepRun.status == RunStatus.OK,
            )
        )
        first_dock = s.scalar(
            select(func.min(DockSession.started_at)).where(DockSession.station == station)
        )
    limit = f"allowed {_days(allowed)} ({why})"
    if last is not None:
        age = now - last
        if age <= allowed:
            return Check(True, f"the last fixity run ended {_days(age)} ago; {limit}")
        return Check(
            False,
            f"the last fixity run ended {_days(age)} ago ({_local(config, last)}); {limit}: is "
            "dockd run up? `dockd sweep fixity` runs one now",
        )
    if first_dock is None:
        return Check(True, "no fixity run yet, and nothing docked yet")
    age = now - first_dock
    if age <= allowed:
        return Check(True, f"no fixity run yet; the first dock was {_days(age)} ago; {limit}")
    return Check(
        False,
        f"no fixity run has succeeded since the first dock {_days(age)} ago; {limit}: "
        "`dockd sweep fixity` runs one now",
    )


def check_alerts(config: Config, ledger: Ledger) -> Check:
    with ledger.read() as s:
        critical = list(
            s.scalars(
                select(Alert)
                .where(
                    Alert.station == config.station.id,
                    Alert.severity == Severity.CRITICAL,
                    Alert.acknowledged_at.is_(None),
                )
                .order_by(Alert.at)
            )
        )
    if not critical:
        return Check(True, "no critical alert is open")
    oldest = critical[0]
    return Check(
        False,
        f"{len(critical)} critical alert(s) open, the oldest {oldest.id} ({oldest.kind}: "
        f"{oldest.message}); see `dockd alerts list`, acknowledge with `dockd alerts ack ID` "
        "once dealt with",
    )


def health(config: Config, now: datetime) -> dict[str, Check]:
    """Every check, in the order of the module's list."""
    ledger_check, ledger = check_ledger(config)
    checks = {
        "ledger": ledger_check,
        "store": check_store(config),
        "free_space": check_free_space(config),
        "daemon": check_daemon(),
    }
    if ledger is None:
        unread = Check(False, "the ledger could not be read (see the ledger check)")
        return {**checks, "fixity": unread, "alerts": unread}
    try:
        checks["fixity"] = check_fixity(config, ledger, now)
        checks["alerts"] = check_alerts(config, ledger)
    finally:
        ledger.close()
    return checks


def report(state: App) -> tuple[bool, dict[str, Any]]:
    """(healthy, the JSON object) for this station."""
    now = state.clock.now()
    try:
        config = state.config
    except DockdError as exc:
        return False, {
            "healthy": False,
            "at": now.isoformat(),
            "checks": {"config": {"ok": False, "reason": str(exc)}},
        }
    checks = health(config, now)
    healthy = all(c.ok for c in checks.values())
    return healthy, {
        "healthy": healthy,
        "station": config.station.id,
        "at": _local(config, now),
        "checks": {name: {"ok": c.ok, "reason": c.reason} for name, c in checks.items()},
    }


def health_cmd(ctx: typer.Context) -> None:
    """Check this station for monitoring: JSON on stdout; exit 0 healthy, 1 not."""
    healthy, out = report(app_of(ctx))
    sys.stdout.write(json.dumps(out, ensure_ascii=False, indent=2) + "\n")
    if not healthy:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("health")(health_cmd)
