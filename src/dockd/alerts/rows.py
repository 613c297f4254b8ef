"""Alert rows as people and scripts see them: the JSON form, the list, acknowledgement."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.clock import Clock
from dockd.config.station import local_iso, localize_times
from dockd.ledger import audit
from dockd.ledger.models import Alert
from dockd.ledger.queries import refuse_if_done, row_by_id


def alert_dict(alert: Alert, tz: tzinfo = UTC) -> dict[str, Any]:
    """The stable JSON form of an alert (used by the notify command and ``--format json``).

    Times are ISO 8601 with ``tz``'s offset: UTC for the notify command (the sink knows
    no station zone), the station's for ``dockd alerts list``, whose message also
    has the times written into it by the code that raised it in station time.
    """

    def iso(at: datetime | None) -> str | None:
        return local_iso(at, tz) if at is not None else None

    message = alert.message if tz is UTC else localize_times(alert.message, tz)
    return {
        "id": alert.id,
        "at": iso(alert.at),
        "station": alert.station,
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "message": message,
        "details": json.loads(alert.details) if alert.details else None,
        "acknowledged_at": iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "group": alert.group_key,
        "occurrences": alert.occurrences or 1,
        "last_at": iso(alert.last_at),
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
