"""Is this station fit to take footage? The checks behind ``dockd health`` and the web
view's station page, and the daemon's dock status as read from outside it.

    ledger      reachable and at the schema this dockd needs (never created here)
    store       the store directory is there; writable (as root) or readable
    free_space  the store's and the quarantine's filesystems above [metrics]
                min_free_percent
    daemon      a `dockd run` holds the machine's daemon lock
    fixity      the last successful fixity run is younger than its schedule allows
    alerts      no critical alert is open

Each check only reads: an SQLite ledger that is not there is reported, not created.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from dockd.config import Config
from dockd.config.ledger import sqlite_file
from dockd.errors import DockdError, NotFound
from dockd.ledger.db import Ledger, current_revision, head_revision, open_ledger
from dockd.ledger.failures import describe_failure, shown_url
from dockd.ledger.models import Alert, DockSession, Severity, SweepRun
from dockd.runtime import (
    BOOT_ID,
    LOCK_NAME,
    RUNTIME_ENV,
    SYSTEM_RUNTIME_DIR,
    FileLock,
    pid_alive,
)
from dockd.sweeps.runs import RunStatus

# A fixity run may start late (misfire grace, a busy machine) and takes hours on a
# big store: it counts as on time until a day after the next one was due.
FIXITY_SLACK = timedelta(days=1)
_MAX_FIRINGS = 2000  # of a schedule, looked at to find its longest gap


@dataclass
class Check:
    """One check's verdict, and why, in words that say what to do."""

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


def local_time(config: Config, at: datetime) -> str:
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


def _held_exclusively(path: Path) -> bool | None:
    """Does a process hold an exclusive ``flock`` on ``path``? From ``/proc/locks``, which
    takes no lock itself (a daemon starting this instant must never find the lock busy
    because of a health check); None when the kernel's list cannot be read."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        text = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # "2: FLOCK  ADVISORY  WRITE 812 fe:00:2148024 0 EOF"; a waiter's line has "->".
    return any(
        {"FLOCK", "WRITE", inode} <= set(words) and "->" not in words
        for words in (line.split() for line in text.splitlines())
    )


def _held_by_trying(path: Path) -> bool:
    """The lock is held when a shared lock on it is refused (without /proc/locks)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def check_daemon() -> Check:
    """A `dockd run` holds the daemon lock (in any runtime directory it may have used)."""
    unreadable = []
    for directory in _runtime_dirs():
        path = directory / LOCK_NAME
        try:
            held = _held_exclusively(path)
            if held is None:
                held = _held_by_trying(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            unreadable.append(f"{path} ({exc.strerror})")
            continue
        if held:
            pid = FileLock(path).holder()
            if pid is not None and pid_alive(pid):
                return Check(True, f"dockd run is running (PID {pid}, holds {path})")
            return Check(True, f"dockd run is running (holds {path})")
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
    from dockd.daemon.scheduler import cron_trigger  # APScheduler: only when it is on

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
            f"the last fixity run ended {_days(age)} ago ({local_time(config, last)}); {limit}: is "
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


def check_alerts(config: Config, ledger: Ledger, _now: datetime) -> Check:
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


def check_open_ledger(ledger: Ledger) -> Check:
    """An open ledger (the web view's) answers and is at the schema this dockd needs."""
    try:
        have = current_revision(ledger.engine)
    except SQLAlchemyError as exc:
        return Check(False, str(describe_failure(ledger.engine.url, exc)))
    need = head_revision()
    if have != need:
        return Check(
            False, f"the ledger is at schema {have}, dockd needs {need}: `dockd ledger migrate`"
        )
    return Check(True, f"{shown_url(ledger.engine.url)} at schema {need}")


def health(config: Config, now: datetime, *, ledger: Ledger | None = None) -> dict[str, Check]:
    """Every check, in the order of the module's list; on ``ledger`` when one is open
    (left open), else on the config's, opened without creating it and closed."""
    if ledger is not None:
        ledger_check, opened = check_open_ledger(ledger), None
    else:
        ledger_check, opened = check_ledger(config)
    checks = {
        "ledger": ledger_check,
        "store": check_store(config),
        "free_space": check_free_space(config),
        "daemon": check_daemon(),
    }
    used = ledger if ledger is not None else opened
    if used is None or not ledger_check.ok:
        unread = Check(False, "the ledger could not be read (see the ledger check)")
        if opened is not None:
            opened.close()
        return {**checks, "fixity": unread, "alerts": unread}
    try:
        for name, check in (("fixity", check_fixity), ("alerts", check_alerts)):
            try:
                checks[name] = check(config, used, now)
            except SQLAlchemyError as exc:  # a failure mid-way is a failed check, not exit 75
                checks[name] = Check(False, str(describe_failure(config.ledger.url, exc)))
    finally:
        if opened is not None:
            opened.close()
    return checks


# ---------------------------------------------------------------------- dock status


def read_status(path: Path) -> dict[str, Any]:
    """The daemon's dock status file with ``stale`` added; NotFound when the daemon never
    wrote one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(
            f"no dock status at {path}: dockd run has not written it. Is the daemon running "
            "(systemctl status dockd)? Does [dock] status_file name the same file?"
        ) from None
    except (OSError, ValueError) as exc:
        raise DockdError(f"cannot read the dock status {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise DockdError(f"{path} is not a dock status file (not a JSON object)")
    doc["stale"] = stale(doc)
    return doc


def stale(doc: dict[str, Any]) -> bool:
    """Not live: its daemon said it stopped, is gone, or no daemon holds the lock."""
    pid = doc.get("pid")
    return (
        doc.get("daemon") != "running"
        or doc.get("boot_id") != BOOT_ID
        or not isinstance(pid, int)
        or not pid_alive(pid)
        or not check_daemon().ok
    )
