"""One run of a sweep at a time, across every process that shares the ledger.

Each run is a row in ``sweep_runs``. A sweep that changes things takes the lock
for its kind first:

* on SQLite, inside one ``BEGIN IMMEDIATE`` transaction (the ledger's only kind),
  the running row of that kind is looked for and the new one inserted, so two
  processes cannot both see "nobody is running";
* on PostgreSQL, a session-level ``pg_try_advisory_lock`` held on its own
  connection for the whole run; the row is then only for people to read.

A crashed run must not block forever: on SQLite a running row is taken over when
its process is gone (same host) or its heartbeat is older than
``[schedule] stale_after_minutes``; on PostgreSQL the lock dies with the connection.
A dry run changes nothing, takes no lock and is recorded as ``dry-run``. A run's
status is a :class:`RunStatus`, stored as its string in ``sweep_runs.status``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import Connection, Select, select, text
from sqlalchemy.orm import Session

from dockd.context import Context, Stopped
from dockd.errors import DockdError
from dockd.ledger import audit
from dockd.ledger.models import Alert, FileState, Recording, Severity, SweepRun
from dockd.runtime import pid_alive

log = structlog.get_logger("dockd.sweeps")

HEARTBEAT_EVERY_S = 30.0


class RunStatus(StrEnum):
    """How a sweep run stands: ``running`` until it ends one of the other ways."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # a stop was requested: it ended between two files
    DRY_RUN = "dry-run"  # decided everything, changed nothing


class SweepBusy(DockdError):
    """Another run of the same sweep is in progress."""

    exit_code = 75  # EX_TEMPFAIL: try again later


@dataclass
class Run:
    """A sweep run in progress: its row id, and a throttled heartbeat."""

    ctx: Context
    kind: str
    id: int
    dry_run: bool
    _owner: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.RUNNING
    _last_beat: float = field(default_factory=time.monotonic)

    def heartbeat(self, **progress: Any) -> None:
        """Tell other processes this run is alive (at most every HEARTBEAT_EVERY_S)."""
        if self.dry_run or time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self._last_beat = time.monotonic()
        with self.ctx.ledger.session() as s:
            row = s.get_one(SweepRun, self.id)
            row.summary = json.dumps(
                {**self._owner, "heartbeat": self.ctx.clock.now().isoformat(), **progress},
                default=str,
            )


def _lock_key(station: str, kind: str) -> int:
    digest = hashlib.sha256(f"dockd-sweep:{station}:{kind}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _stale(row: SweepRun, now: datetime, stale_after: timedelta) -> str | None:
    """Why a 'running' row is stale, or None when its process may still be at work."""
    try:
        info = json.loads(row.summary or "{}")
    except ValueError:
        info = {}
    host, pid = info.get("host"), info.get("pid")
    if host == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return f"process {pid} on {host} is gone"
    beat = info.get("heartbeat")
    last = datetime.fromisoformat(beat) if isinstance(beat, str) else row.started_at
    if now - last > stale_after:
        return f"no heartbeat since {last.isoformat()}"
    return None


def _of_kind(ctx: Context, kind: str, status: RunStatus) -> Select[SweepRun]:
    """This station's runs of ``kind`` that stand at ``status``."""
    return select(SweepRun).where(
        SweepRun.kind == kind, SweepRun.station == ctx.config.station.id, SweepRun.status == status
    )


def _claim_sqlite(ctx: Context, kind: str, owner: dict[str, Any]) -> int:
    stale_after = timedelta(minutes=ctx.config.schedule.stale_after_minutes)
    now = ctx.clock.now()
    with ctx.ledger.session() as s:  # BEGIN IMMEDIATE: one claimer at a time
        for row in s.scalars(_of_kind(ctx, kind, RunStatus.RUNNING)):
            why = _stale(row, now, stale_after)
            if why is None:
                info = json.loads(row.summary or "{}")
                raise SweepBusy(
                    f"a {kind} sweep is already running (run {row.id}, started "
                    f"{row.started_at.isoformat()}, pid {info.get('pid')} on {info.get('host')}); "
                    f"wait for it to end. If that process is gone it is taken over once it has "
                    f"been silent for {ctx.config.schedule.stale_after_minutes} minutes"
                )
            _abandon(row, now, why)
        return _insert(s, ctx, kind, owner, now)


def _abandon(row: SweepRun, now: datetime, why: str) -> None:
    info = json.loads(row.summary or "{}") if row.summary else {}
    row.status, row.ended_at = RunStatus.FAILED, now
    row.summary = json.dumps({**info, "abandoned": why}, default=str)
    log.warning("stale sweep run taken over", run_id=row.id, kind=row.kind, why=why)


def _insert(
    s: Session,
    ctx: Context,
    kind: str,
    owner: dict[str, Any],
    now: datetime,
    status: RunStatus = RunStatus.RUNNING,
) -> int:
    """The new run's row; a running one carries its first heartbeat."""
    beat = {"heartbeat": now.isoformat()} if status is RunStatus.RUNNING else {}
    row = SweepRun(
        kind=kind,
        station=ctx.config.station.id,
        started_at=now,
        status=status,
        summary=json.dumps({**owner, **beat}),
    )
    s.add(row)
    s.flush()
    return row.id


@contextlib.contextmanager
def _pg_lock(ctx: Context, kind: str) -> Iterator[Connection]:
    key = _lock_key(ctx.config.station.id, kind)
    conn = ctx.ledger.engine.connect()
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            raise SweepBusy(f"a {kind} sweep is already running on another connection; wait for it")
        try:
            yield conn
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
    finally:
        conn.close()


def _claim(
    ctx: Context, stack: contextlib.ExitStack, kind: str, owner: dict[str, Any], dry_run: bool
) -> int:
    """The new run's row id, once this process may run ``kind`` (a dry run always may)."""
    if dry_run:
        with ctx.ledger.session() as s:
            return _insert(s, ctx, kind, owner, ctx.clock.now(), RunStatus.DRY_RUN)
    if ctx.ledger.dialect != "postgresql":
        return _claim_sqlite(ctx, kind, owner)
    stack.enter_context(_pg_lock(ctx, kind))
    now = ctx.clock.now()
    with ctx.ledger.session() as s:
        for stale in s.scalars(_of_kind(ctx, kind, RunStatus.RUNNING)):
            _abandon(stale, now, "its lock was free: the process is gone")
        return _insert(s, ctx, kind, owner, now)


@contextlib.contextmanager
def sweep_run(ctx: Context, kind: str, *, dry_run: bool = False) -> Iterator[Run]:
    """Run a sweep of ``kind`` exclusively; the row ends ok / failed / interrupted / dry-run.

    The body sets ``run.summary`` (a dict) for the row; raising Stopped ends the
    row as 'interrupted' and is swallowed, any other exception ends it as 'failed'.
    """
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "actor": ctx.actor}
    with contextlib.ExitStack() as stack:
        run_id = _claim(ctx, stack, kind, owner, dry_run)
        run = Run(ctx, kind, run_id, dry_run, owner)
        status = RunStatus.DRY_RUN if dry_run else RunStatus.OK
        error: str | None = None
        try:
            yield run
        except Stopped:
            status = RunStatus.INTERRUPTED
        except BaseException as exc:
            status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            run.status = status
            summary = dict(run.summary)
            if error:
                summary["error"] = error
            with ctx.ledger.session() as s:
                row = s.get_one(SweepRun, run_id)
                row.status = status
                row.ended_at = ctx.clock.now()
                row.summary = json.dumps({**owner, **summary}, default=str)
            log.info("sweep run ended", kind=kind, run_id=run_id, status=row.status)


def last_run(ctx: Context, kind: str, *, status: RunStatus = RunStatus.OK) -> SweepRun | None:
    with ctx.ledger.read() as s:
        return s.scalars(_of_kind(ctx, kind, status).order_by(SweepRun.id.desc()).limit(1)).first()


def recent_runs(ctx: Context, limit: int = 20) -> list[SweepRun]:
    with ctx.ledger.read() as s:
        return list(s.scalars(select(SweepRun).order_by(SweepRun.id.desc()).limit(limit)))


class Throttle:
    """A token bucket holding reads under ``bytes_per_s``; at most one second of burst.

    Waiting is done on the stop event, so a stop request ends the wait at once.
    """

    def __init__(self, bytes_per_s: float, stop: threading.Event) -> None:
        self.rate = bytes_per_s
        self.stop = stop
        self.capacity = bytes_per_s  # one second's worth
        self._tokens = self.capacity
        self._last = time.monotonic()

    def consume(self, nbytes: int) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= nbytes
        if self._tokens < 0 and self.stop.wait(-self._tokens / self.rate):
            raise Stopped("stop requested")


def alert_once(
    ctx: Context,
    kind: str,
    subject: str,
    message: str,
    *,
    severity: str = Severity.CRITICAL,
    details: dict[str, Any] | None = None,
) -> bool:
    """Raise an alert unless the same one (kind and subject) is still open; True if raised."""
    with ctx.ledger.read() as s:
        open_ = s.scalar(
            select(Alert.id)
            .where(Alert.kind == kind, Alert.subject == subject, Alert.acknowledged_at.is_(None))
            .limit(1)
        )
    if open_ is not None:
        return False
    ctx.alerts.raise_alert(kind, subject, message, severity=severity, details=details)
    return True


def require_store(ctx: Context, kind: str, outcome: str, *, fold: bool = False) -> None:
    """Refuse to sweep a store whose disk is not there: an alert, then DockdError.

    A store that does not exist yet is no matter while nothing is stored in it. With
    ``fold`` every run counts on the open alert (``raise_alert`` folds repeats);
    without, the alert is raised only while none of its kind and subject is open.
    """
    root = ctx.config.store.root
    if root.is_dir():
        return
    here = Recording.station == ctx.config.station.id
    with ctx.ledger.read() as s:
        stored = select(Recording.id).where(Recording.state == FileState.STORED, here).limit(1)
        if s.scalar(stored) is None:
            return  # nothing stored yet: nothing to lose
    alert_kind, message = (
        f"{kind}.store_unavailable",
        (f"the store {root} is not there (disk not mounted?): the {kind} sweep {outcome}"),
    )
    if fold:
        ctx.alerts.raise_alert(alert_kind, str(root), message, severity=Severity.CRITICAL)
    else:
        alert_once(ctx, alert_kind, str(root), message)
    raise DockdError(f"the store {root} is not a directory; is its disk mounted?")


def audit_run(ctx: Context, run: Run, action: str, details: dict[str, Any]) -> None:
    """One audit event for a finished (not dry) sweep run: what it did, in counts."""
    with ctx.ledger.session() as s:
        audit.record(
            s,
            at=ctx.clock.now(),
            station=ctx.config.station.id,
            actor=ctx.actor,
            action=action,
            subject_type="sweep",
            subject_id=run.id,
            details=details,
        )
