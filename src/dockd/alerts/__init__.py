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

Here is :class:`AlertSink`, which raises and folds alerts; ``delivery`` runs the
notify command after the commit, ``rows`` reads and acknowledges alerts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dockd.alerts.delivery import Written, after_commit_of, run_notify
from dockd.alerts.rows import alert_dict
from dockd.clock import Clock
from dockd.config.alerts import AlertsConfig
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert, Severity

log = structlog.get_logger("dockd.alerts")

FIRST_ITEMS = 10  # how many item names a folded alert keeps (details["first"])
_UNWRITTEN_MEMORY = 10_000  # groups remembered while the ledger cannot be written
_RANKS = list(Severity)  # the least urgent first


@dataclass(frozen=True)
class _Raised:
    """One alert as raised, before it is written (or found unwritable)."""

    kind: str
    subject: str
    message: str
    severity: Severity
    details: dict[str, Any] | None
    group: str | None
    item: str | None


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
        severity: str = Severity.WARNING,
        details: dict[str, Any] | None = None,
        session: Session | None = None,
        group: str | None = None,
        item: str | None = None,
    ) -> int | None:
        """Record an alert and notify once it is committed; return its id.

        ``severity`` is a :class:`Severity` (or its word). With ``session``, the row
        is added to the caller's transaction, which owns failures (they raise), and
        the notify command runs after it commits. Without one, the row is committed in
        its own transaction; if the ledger cannot be written the alert is logged at
        level critical, still notified, and None is returned.

        With ``group`` (e.g. ``f"session:{sid}"``), an open alert of the same kind and
        group is counted up instead of adding a row; ``item`` (e.g. the file's path)
        names this occurrence. The id returned is that of the folded row.
        """
        if severity not in _RANKS:
            raise ValueError(f"severity {severity!r} not in {tuple(s.value for s in _RANKS)}")
        raised = _Raised(kind, subject, message, Severity(severity), details, group, item)
        if session is not None:
            written = self._write(session, raised)
            after_commit_of(session, written)
            return written.alert_id
        try:
            with self.ledger.session() as s:
                written = self._write(s, raised)
        except SQLAlchemyError as exc:
            self._unwritten_alert(raised, exc)
            return None
        written.deliver()
        return written.alert_id

    # ------------------------------------------------------------------ ledger row

    def _row(self, a: _Raised, now: datetime, details: dict[str, Any] | None) -> Alert:
        """A new alert row (not yet added to any session)."""
        return Alert(
            at=now,
            station=self.station,
            kind=a.kind,
            severity=a.severity.value,
            subject=a.subject,
            message=a.message,
            details=audit.canonical(details) if details else None,
            group_key=a.group,
            occurrences=1,
            last_at=now,
        )

    def _write(self, s: Session, a: _Raised) -> Written:
        now = self.clock.now()
        details = a.details
        if a.group is not None:
            existing = self._open_alert_of_group(s, a.kind, a.group)
            if existing is not None:
                _fold(existing, now=now, severity=a.severity, group=a.group, item=a.item)
                s.flush()
                return Written(self.config, alert_dict(existing), first=False, item=a.item)
            details = {**(details or {}), "count": 1, "first": [] if a.item is None else [a.item]}
        alert = self._row(a, now, details)
        s.add(alert)
        s.flush()
        return Written(self.config, alert_dict(alert), first=True, item=a.item)

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

    def _unwritten_alert(self, a: _Raised, exc: SQLAlchemyError) -> None:
        error = str(getattr(exc, "orig", None) or exc)
        now = self.clock.now()
        fields = {**dataclasses.asdict(a), "severity": a.severity.value}
        log.critical(
            "alert not written to the ledger",
            **fields,
            station=self.station,
            at=now.isoformat(),
            error=error,
        )
        if a.group is not None:
            with self._lock:
                if (a.kind, a.group) in self._unwritten:
                    return  # its first occurrence was already notified
                if len(self._unwritten) >= _UNWRITTEN_MEMORY:
                    self._unwritten.clear()
                self._unwritten.add((a.kind, a.group))
        payload = alert_dict(self._row(a, now, a.details))
        payload.update(last_at=None, ledger_error=f"not written to the ledger: {error}")
        run_notify(self.config, payload)


def _lock_key(station: str, kind: str, group: str) -> int:
    """A signed 64-bit key for pg_advisory_xact_lock naming one alert group."""
    digest = hashlib.sha256(f"dockd.alert\0{station}\0{kind}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _fold(alert: Alert, *, now: datetime, severity: Severity, group: str, item: str | None) -> None:
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
    if _RANKS.index(severity) > _RANKS.index(Severity(alert.severity)):
        alert.severity = severity.value  # a worse repeat raises the alert, never lowers it
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
