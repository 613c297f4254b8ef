"""The audit trail: append-only, hash-chained.

Every ingest, tag, hold, release, view, export and deletion is one event. Each
event's hash covers its own fields and the hash of the event before it, so an
auditor can rebuild the history of any file from the ledger alone and see if
anyone has edited, removed or reordered that history.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dockd.ledger.models import AuditEvent

GENESIS = "0" * 64
_CHAIN_LOCK = 0x646F636B64  # "dockd": one writer of the chain at a time on PostgreSQL


def canonical(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the same bytes on every machine."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(
    *,
    prev_hash: str,
    at: datetime,
    station: str,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: str,
) -> str:
    """SHA-256 of the canonical form of one event (``details`` already canonical JSON)."""
    body = canonical(
        {
            "prev": prev_hash,
            "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
            "station": station,
            "actor": actor,
            "action": action,
            "subject": [subject_type, subject_id],
            "details": details,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    at: datetime,
    station: str,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | int,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    at = at.astimezone(UTC)
    prev_hash = prev or GENESIS
    body = canonical(details or {})
    digest = event_hash(
        prev_hash=prev_hash,
        at=at,
        station=station,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        details=body,
    )
    ev = AuditEvent(
        at=at,
        station=station,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        details=body,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(ev)
    session.flush()
    return ev


def history(session: Session, subject_type: str, subject_id: str | int) -> list[AuditEvent]:
    """Every event about one subject, oldest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.subject_type == subject_type, AuditEvent.subject_id == str(subject_id)
            )
            .order_by(AuditEvent.id)
        )
    )
