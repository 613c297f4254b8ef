"""Alerts: the one place where everything that needs a person lands.

An alert is written to the ledger first, then, if configured, handed as JSON on
stdin to a notify command run as an argument list (never via a shell). A notify
command that fails is logged, not fatal: the ledger row stands.

The notify command never runs inside a ledger transaction: it can take up to
``alerts.notify_timeout_s`` and must neither hold SQLite's write lock nor announce a
row that may still roll back. Given the caller's ``session``, the alert is added to
it and announced only once that session's outermost transaction has committed
(nothing is sent if it rolls back, nor for a savepoint that rolls back).

Repeats of one problem are folded: with ``group`` given, an open (unacknowledged)
alert of the same station, kind and group counts them (``occurrences``, ``last_at``,
the first names in ``details``) instead of adding a row per file, and only the first
occurrence runs the notify command.

If the ledger itself cannot be written, the alert is not lost: it is logged at
level critical with every field and still handed to the notify command.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import event, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from dockd.clock import Clock
from dockd.config.alerts import AlertsConfig
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert

log = structlog.get_logger("dockd.alerts")

SEVERITIES = ("info", "warning", "critical")
FIRST_ITEMS = 10  # how many item names a folded alert keeps (details["first"])
_UNWRITTEN_MEMORY = 10_000  # groups remembered while the ledger cannot be written


@dataclass(frozen=True)
class AlertSink:
    """Raises alerts for one station into one ledger."""

    ledger: Ledger
    station: str
    clock: Clock
    config: AlertsConfig
    # (kind, group) already notified while the ledger could not be written: a ledger
    # outage during a dock must not turn into one notification per file.
    _unwritten: set[tuple[str, str]] = field(
        default_factory=set, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def raise_alert(
        self,
        kind: str,
        subject: str,
        message: str,
        *,
        severity: str = "warning",
        details: dict[str, Any] | None = None,
        session: Session | None = None,
        group: str | None = None,
        item: str | None = None,
    ) -> int | None:
        """Record an alert and notify once it is committed; return its id.

        With ``session``, the row is added to the caller's transaction, which owns
        failures (they raise), and the notify command runs after it commits. Without
        one, the row is committed in its own transaction; if the ledger cannot be
        written the alert is logged at level critical, still notified, and None is
        returned.

        With ``group`` (e.g. ``f"session:{sid}"``), an open alert of the same kind and
        group is counted up instead of adding a row; ``item`` (e.g. the file's path)
        names this occurrence. The id returned is that of the folded row.
        """
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} not in {SEVERITIES}")
        if session is not None:
            written = self._write(session, kind, subject, message, severity, details, group, item)
            _after_commit_of(session, written)
            return written.alert_id
        try:
            with self.ledger.session() as s:
                written = self._write(s, kind, subject, message, severity, details, group, item)
        except SQLAlchemyError as exc:
            self._unwritten_alert(kind, subject, message, severity, details, group, item, exc)
            return None
        written.deliver()
        return written.alert_id

    # ------------------------------------------------------------------ ledger row

    def _write(
        self,
        s: Session,
        kind: str,
        subject: str,
        message: str,
        severity: str,
        details: dict[str, Any] | None,
        group: str | None,
        item: str | None,
    ) -> _Written:
        now = self.clock.now()
        if group is not None:
            existing = self._open_alert_of_group(s, kind, group)
            if existing is not None:
                _fold(existing, now=now, severity=severity, group=group, item=item)
                s.flush()
                return _Written(self, alert_dict(existing), first=False, item=item)
        if group is not None:
            details = {**(details or {}), "count": 1, "first": [] if item is None else [item]}
        alert = Alert(
            at=now,
            station=self.station,
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
            details=audit.canonical(details) if details else None,
            group_key=group,
            occurrences=1,
            last_at=now,
        )
        s.add(alert)
        s.flush()
        return _Written(self, alert_dict(alert), first=True, item=item)

    def _open_alert_of_group(self, s: Session, kind: str, group: str) -> Alert | None:
        """The open alert this one folds into, locked against concurrent writers.

        SQLite: every dockd writer already holds the write lock (BEGIN IMMEDIATE).
        PostgreSQL: a transaction-scoped advisory lock on (station, kind, group) makes
        "look, then insert or update" atomic even when no row exists yet (a row lock
        cannot lock a row that is not there), and FOR UPDATE locks the row found
        against a concurrent acknowledgement.
        """
        postgres = s.get_bind().dialect.name == "postgresql"
        if postgres:
            s.execute(select(func.pg_advisory_xact_lock(_lock_key(self.station, kind, group))))
        q = (
            select(Alert)
            .where(
                Alert.station == self.station,
                Alert.kind == kind,
                Alert.group_key == group,
                Alert.acknowledged_at.is_(None),
            )
            .order_by(Alert.id)
            .limit(1)
            .execution_options(populate_existing=True)  # never count on a stale copy
        )
        if postgres:
            q = q.with_for_update()
        return s.scalars(q).first()

    # ------------------------------------------------------------ ledger unwritable

    def _unwritten_alert(
        self,
        kind: str,
        subject: str,
        message: str,
        severity: str,
        details: dict[str, Any] | None,
        group: str | None,
        item: str | None,
        exc: SQLAlchemyError,
    ) -> None:
        error = str(getattr(exc, "orig", None) or exc)
        log.critical(
            "alert not written to the ledger",
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
            details=details,
            group=group,
            item=item,
            station=self.station,
            at=self.clock.now().isoformat(),
            error=error,
        )
        if group is not None:
            with self._lock:
                if (kind, group) in self._unwritten:
                    return  # its first occurrence was already notified
                if len(self._unwritten) >= _UNWRITTEN_MEMORY:
                    self._unwritten.clear()
                self._unwritten.add((kind, group))
        payload: dict[str, Any] = {
            "id": None,
            "at": self.clock.now().isoformat(),
            "station": self.station,
            "kind": kind,
            "severity": severity,
            "subject": subject,
            "message": message,
            "details": json.loads(audit.canonical(details)) if details else None,
            "acknowledged_at": None,
            "acknowledged_by": None,
            "group": group,
            "occurrences": 1,
            "last_at": None,
            "ledger_error": f"not written to the ledger: {error}",
        }
        self._notify(payload)

    # ---------------------------------------------------------------------- notify

    def _notify(self, payload: dict[str, Any]) -> None:
        if not self.config.notify_command:
            return
        data = json.dumps(payload, ensure_ascii=False)
        timeout = self.config.notify_timeout_s
        if _deadline is not None:  # the daemon is stopping: its bound comes first
            timeout = max(0.1, min(timeout, _deadline - time.monotonic()))
        try:
            proc = subprocess.run(
                list(self.config.notify_command),
                input=data.encode("utf-8"),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error(
                "alert notify failed",
                alert_id=payload["id"],
                command=self.config.notify_command[0],
                error=str(exc),
            )
            return
        if proc.returncode != 0:
            log.error(
                "alert notify failed",
                alert_id=payload["id"],
                command=self.config.notify_command[0],
                exit_code=proc.returncode,
                stderr=proc.stderr.decode("utf-8", "replace")[-500:],
            )


_deadline: float | None = None


def notify_deadline(at: float) -> None:
    """From now on no notify command may run past ``at`` (time.monotonic()): the
    daemon is stopping, and its stop is bounded."""
    global _deadline
    _deadline = at


def _lock_key(station: str, kind: str, group: str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock naming one alert group."""
    digest = hashlib.sha256(f"dockd.alert\0{station}\0{kind}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _fold(alert: Alert, *, now: datetime, severity: str, group: str, item: str | None) -> None:
    """Count one more occurrence into ``alert`` and say so in its message."""
    details: dict[str, Any] = json.loads(alert.details) if alert.details else {}
    base = details.setdefault("first_message", alert.message)
    first: list[str] = list(details.get("first") or [])
    if item is not None and item not in first and len(first) < FIRST_ITEMS:
        first.append(item)
    alert.occurrences = (alert.occurrences or 1) + 1
    alert.last_at = now
    details["count"] = alert.occurrences
    details["first"] = first
    alert.details = audit.canonical(details)
    if SEVERITIES.index(severity) > SEVERITIES.index(alert.severity):
        alert.severity = severity  # a worse repeat raises the alert, never lowers it
    alert.message = f"{base} {_repeat_note(alert.occurrences, first, group)}"


def _repeat_note(count: int, first: list[str], group: str) -> str:
    """E.g. ``[this happened 37 times in dock session 12, all counted in this one alert;
    the first 10: a.mp4, b.mp4, ..., j.mp4, and 27 more]``."""
    where = f"dock session {group[8:]}" if group.startswith("session:") else f"group {group!r}"
    note = f"[this happened {count} times in {where}, all counted in this one alert"
    if first:
        names = ", ".join(first)
        rest = count - len(first)
        if rest > 0:
            note += f"; the first {len(first)}: {names}, and {rest} more"
        else:
            note += f": {names}"
    return note + "]"


@dataclass
class _Written:
    """An alert row as written, and what to do once it is committed."""

    sink: AlertSink
    payload: dict[str, Any]
    first: bool
    item: str | None
    holder: SessionTransaction | None = None  # innermost transaction holding the row
    committed: bool = False

    @property
    def alert_id(self) -> int:
        alert_id: int = self.payload["id"]
        return alert_id

    def deliver(self) -> None:
        """Log it and, for a first occurrence, run the notify command (after commit)."""
        p = self.payload
        if self.first:
            log.warning(
                "alert",
                alert_id=p["id"],
                kind=p["kind"],
                severity=p["severity"],
                subject=p["subject"],
                message=p["message"],
                group=p["group"],
            )
            self.sink._notify(p)
        else:
            log.info(
                "alert repeated",
                alert_id=p["id"],
                kind=p["kind"],
                group=p["group"],
                occurrences=p["occurrences"],
                item=self.item,
            )


# ------------------------------------------------------- delivery after a commit

_PENDING = "dockd.alerts.pending"


def _after_commit_of(session: Session, written: _Written) -> None:
    """Deliver ``written`` once ``session``'s outermost transaction has committed.

    The session's listeners are registered once per session (``session.info`` holds
    what is pending), so a long transaction raising many alerts adds no listeners.
    ``after_commit`` also fires when a savepoint is released; only the outermost
    commit counts. A rollback of the transaction (or savepoint) holding the row
    drops it. Delivery happens at ``after_transaction_end`` of the outermost
    transaction, when the session no longer holds a connection or any lock.
    """
    written.holder = session.get_nested_transaction() or session.get_transaction()
    pending: list[_Written] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = []
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_soft_rollback", _on_soft_rollback)
        event.listen(session, "after_transaction_end", _on_transaction_end)
    pending.append(written)


def _chain(t: SessionTransaction | None) -> Iterator[SessionTransaction]:
    while t is not None:
        yield t
        t = t.parent


def _on_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: the outer transaction may still roll back
    for w in session.info.get(_PENDING, ()):
        w.committed = True


def _on_soft_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    pending: list[_Written] = session.info.get(_PENDING, [])
    pending[:] = [w for w in pending if previous_transaction not in _chain(w.holder)]


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    pending: list[_Written] = session.info.get(_PENDING, [])
    done, pending[:] = list(pending), []
    for w in done:
        if not w.committed:
            # Rolled back with its transaction (often because the ledger failed): no
            # notification for a row that does not exist, but the log keeps the alert.
            log.error("alert not written: its transaction rolled back", **w.payload)
            continue
        try:
            w.deliver()
        except Exception:  # never let a notification break the caller's commit
            log.exception("alert delivery failed", alert_id=w.payload["id"])


# ------------------------------------------------------------------ reading, ack


def alert_dict(alert: Alert) -> dict[str, Any]:
    """The stable JSON form of an alert (used by the notify command and ``--format json``)."""
    return {
        "id": alert.id,
        "at": alert.at.isoformat(),
        "station": alert.station,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "message": alert.message,
        "details": json.loads(alert.details) if alert.details else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "acknowledged_by": alert.acknowledged_by,
        "group": alert.group_key,
        "occurrences": alert.occurrences or 1,
        "last_at": alert.last_at.isoformat() if alert.last_at else None,
    }


def list_alerts(session: Session, *, include_acknowledged: bool = False) -> list[Alert]:
    q = select(Alert).order_by(Alert.id)
    if not include_acknowledged:
        q = q.where(Alert.acknowledged_at.is_(None))
    return list(session.scalars(q))


def acknowledge(session: Session, alert_id: int, *, by: str, clock: Clock, station: str) -> Alert:
    """Mark an alert as seen by ``by``; an audit event records who and when."""
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise NotFound(f"no alert with id {alert_id}; `dockd alerts list --all` shows them")
    if alert.acknowledged_at is not None:
        raise UsageError(
            f"alert {alert_id} was already acknowledged by {alert.acknowledged_by} "
            f"at {alert.acknowledged_at.isoformat()}"
        )
    alert.acknowledged_at = clock.now()
    alert.acknowledged_by = by
    audit.record(
        session,
        at=alert.acknowledged_at,
        station=station,
        actor=by,
        action="alert.ack",
        subject_type="alert",
        subject_id=alert_id,
        details={"kind": alert.kind, "subject": alert.subject},
    )
    return alert
