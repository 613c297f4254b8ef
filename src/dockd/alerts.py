"""Alerts: the one place where everything that needs a person lands.

An alert is written to the ledger first (it is never lost), then, if configured,
handed as JSON on stdin to a notify command run as an argument list (never via a
shell). A notify command that fails is logged, not fatal: the ledger row stands.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.clock import Clock
from dockd.config import AlertsConfig
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import Alert

log = structlog.get_logger("dockd.alerts")

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class AlertSink:
    """Raises alerts for one station into one ledger."""

    ledger: Ledger
    station: str
    clock: Clock
    config: AlertsConfig

    def raise_alert(
        self,
        kind: str,
        subject: str,
        message: str,
        *,
        severity: str = "warning",
        details: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> int:
        """Record an alert (inside ``session`` if given) and notify; returns its id."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} not in {SEVERITIES}")
        alert = Alert(
            at=self.clock.now(),
            station=self.station,
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
            details=audit.canonical(details) if details else None,
        )
        if session is not None:
            session.add(alert)
            session.flush()
        else:
            with self.ledger.session() as s:
                s.add(alert)
                s.flush()
        log.warning(
            "alert",
            alert_id=alert.id,
            kind=kind,
            severity=severity,
            subject=subject,
            message=message,
        )
        self._notify(alert)
        return alert.id

    def _notify(self, alert: Alert) -> None:
        if not self.config.notify_command:
            return
        payload = json.dumps(alert_dict(alert), ensure_ascii=False)
        try:
            proc = subprocess.run(
                list(self.config.notify_command),
                input=payload.encode("utf-8"),
                capture_output=True,
                timeout=self.config.notify_timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.error(
                "alert notify failed",
                alert_id=alert.id,
                command=self.config.notify_command[0],
                error=str(exc),
            )
            return
        if proc.returncode != 0:
            log.error(
                "alert notify failed",
                alert_id=alert.id,
                command=self.config.notify_command[0],
                exit_code=proc.returncode,
                stderr=proc.stderr.decode("utf-8", "replace")[-500:],
            )


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
