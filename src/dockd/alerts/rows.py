"""Alert rows as people and scripts see them: the JSON form, the list, acknowledgement."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.clock import Clock
from dockd.ledger import audit
from dockd.ledger.models import Alert
from dockd.ledger.queries import refuse_if_done, row_by_id


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
    missing = f"no alert with id {alert_id}; `dockd alerts list --all` shows them"
    alert = row_by_id(session, Alert, alert_id, missing)
    done = f"alert {alert_id} was already acknowledged"
    refuse_if_done(alert.acknowledged_at, alert.acknowledged_by, done)
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
