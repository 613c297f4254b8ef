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

from dockd.ledger.models import AuditEvent, Recording

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


# Columns of a file row that the audit trail vouches for. Every event about a file
# that changes any of them carries the new values under details["set"], so
# ``dockd audit verify`` can replay a file's events and compare with its row.
AUDITED_FILE_COLUMNS: tuple[str, ...] = (
    "blake3",
    "size_bytes",
    "store_path",
    "source_path",
    "device_ref",
    "officer_id",
    "recorded_start",
    "case_number",
    "case_cause",
    "party",
    "category",
    "access_class",
    "state",
)


def _json_value(value: Any) -> Any:
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def file_snapshot(
    row: Recording, columns: tuple[str, ...] = AUDITED_FILE_COLUMNS
) -> dict[str, Any]:
    """The audited columns of a file row as JSON values (datetimes as UTC ISO 8601)."""
    return {c: _json_value(getattr(row, c)) for c in columns}


def record_file_change(
    session: Session,
    row: Recording,
    *,
    at: datetime,
    actor: str,
    action: str,
    changed: tuple[str, ...],
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Audit a change to a file row: ``changed`` names the columns just set on ``row``.

    Use this for every change to a file (tag, trash, restore, purge, ...): the
    event carries the new values so the row can be checked against its history.
    """
    payload = dict(details or {})
    payload["set"] = file_snapshot(row, changed)
    return record(
        session,
        at=at,
        station=row.station,
        actor=actor,
        action=action,
        subject_type="file",
        subject_id=row.id,
        details=payload,
    )


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
