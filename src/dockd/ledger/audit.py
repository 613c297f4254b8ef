"""The audit trail: append-only, hash-chained.

Every ingest, tag, hold, release, view, export and deletion is one event. Each
event's hash covers its own fields and the hash of the event before it, so an
auditor can rebuild the history of any file from the ledger alone and see if
anyone has edited, removed or reordered that history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text
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


# The columns of an event that its hash covers (every one but ``id`` and ``hash``).
HASHED = ("prev_hash", "at", "station", "actor", "action", "subject_type", "subject_id", "details")


def hash_of(ev: Any) -> str:
    """:func:`event_hash` of an event, from its own fields (an :class:`AuditEvent` or a
    row of its columns)."""
    return event_hash(**{name: getattr(ev, name) for name in HASHED})


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
    return record_many(
        session,
        [
            Event(
                at=at,
                station=station,
                actor=actor,
                action=action,
                subject_type=subject_type,
                subject_id=subject_id,
                details=details,
            )
        ],
    )[0]


@dataclass(frozen=True)
class Stamp:
    """When, where and by whom a change is made: what all the audit events of one
    change share, so a module that audits several actions passes one value around."""

    at: datetime
    station: str
    actor: str


def record_stamped(
    session: Session,
    stamp: Stamp,
    action: str,
    subject_type: str,
    subject_id: str | int,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """:func:`record` of one action under ``stamp``: the one place the modules that
    audit accounts, access requests, logins and cases turn a stamp into an event."""
    return record(
        session,
        at=stamp.at,
        station=stamp.station,
        actor=stamp.actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
    )


@dataclass(frozen=True)
class Event:
    """One event to append with :func:`record_many`: :func:`record`'s arguments."""

    at: datetime
    station: str
    actor: str
    action: str
    subject_type: str
    subject_id: str | int
    details: dict[str, Any] | None = None


def record_many(session: Session, events: Sequence[Event]) -> list[AuditEvent]:
    """Append events to the chain, in order, inside the caller's transaction.

    The chain is exactly what :func:`record` called once per event would make (each
    event links to the one before it, ids follow one another), but the head is read
    once and the rows are written in one flush: a sweep that trashes hundreds of
    files pays one round trip for their events, not one per file.
    """
    if not events:
        return []
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    out: list[AuditEvent] = []
    for e in events:
        ev = AuditEvent(
            at=e.at.astimezone(UTC),
            station=e.station,
            actor=e.actor,
            action=e.action,
            subject_type=e.subject_type,
            subject_id=str(e.subject_id),
            details=canonical(e.details or {}),
            prev_hash=prev or GENESIS,
        )
        ev.hash = prev = hash_of(ev)
        out.append(ev)
    session.add_all(out)
    session.flush()
    return out


def record_new(
    session: Session,
    row: Any,
    *,
    at: datetime,
    station: str,
    actor: str,
    action: str,
    subject_type: str,
    details: dict[str, Any],
) -> AuditEvent:
    """Add ``row`` (a new register entry: an explanation, an inspection, a device's
    service record) and append its event, naming it by the id it was given."""
    session.add(row)
    session.flush()
    return record(
        session,
        at=at,
        station=station,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=row.id,
        details=details,
    )


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
    "officer_by_hand",
)
# Audited columns added after files were already audited: a file whose events never set
# one holds this value (an older ledger verifies as it did).
AUDITED_SINCE: dict[str, Any] = {"officer_by_hand": False}


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
    return record_many(session, [file_change(row, at, actor, action, changed, details)])[0]


def file_change(
    row: Recording,
    at: datetime,
    actor: str,
    action: str,
    changed: tuple[str, ...],
    details: dict[str, Any] | None = None,
) -> Event:
    """The event :func:`record_file_change` appends, to append many with :func:`record_many`."""
    payload = dict(details or {})
    payload["set"] = file_snapshot(row, changed)
    return Event(at, row.station, actor, action, "file", row.id, payload)


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


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class ChainHead:
    """The newest event of the chain: what a station writes into its paper register."""

    count: int
    last_id: int | None
    hash: str  # GENESIS when the chain is empty
    at: datetime | None


@dataclass(frozen=True)
class Problem:
    """One thing ``verify`` found wrong, naming the event (or file) where it starts."""

    message: str
    event_id: int | None = None
    file_id: int | None = None


@dataclass
class Verification:
    head: ChainHead
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events_checked: int = 0
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def head(session: Session) -> ChainHead:
    """The chain's newest event and how many events there are."""
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    last = session.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.at)
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    if last is None:
        return ChainHead(count=0, last_id=None, hash=GENESIS, at=None)
    return ChainHead(count=count, last_id=last.id, hash=last.hash, at=last.at)


def _describe(ev: Any) -> str:
    return f"event #{ev.id} ({ev.action} on {ev.subject_type} {ev.subject_id})"


def verify_chain(session: Session, *, strict_ids: bool | None = None) -> Verification:
    """Walk the chain in id order: recompute every hash, check every prev link and that
    ids run without gaps.

    ``strict_ids`` (default: on for SQLite) makes a gap in the ids a problem. On
    PostgreSQL a rolled-back transaction leaves a hole in the id sequence, so there
    a gap whose links are intact is only a warning; a deleted event still breaks
    the link of the event after it.
    """
    if strict_ids is None:
        strict_ids = session.get_bind().dialect.name != "postgresql"
    result = Verification(head=head(session))
    cols = (
        AuditEvent.id,
        AuditEvent.at,
        AuditEvent.station,
        AuditEvent.actor,
        AuditEvent.action,
        AuditEvent.subject_type,
        AuditEvent.subject_id,
        AuditEvent.details,
        AuditEvent.prev_hash,
        AuditEvent.hash,
    )
    prev: Any = None
    stream = session.execute(
        select(*cols).order_by(AuditEvent.id).execution_options(yield_per=2000)
    )
    for ev in stream:
        result.events_checked += 1
        expected_prev = prev.hash if prev is not None else GENESIS
        if prev is None and ev.id != 1:
            msg = f"the chain starts at event #{ev.id}: event(s) before it are missing"
            if strict_ids:
                result.problems.append(Problem(msg, event_id=ev.id))
            else:
                result.warnings.append(msg)
        if prev is not None and ev.id != prev.id + 1:
            msg = (
                f"event ids jump from #{prev.id} to #{ev.id}: {ev.id - prev.id - 1} event(s) "
                "missing from the chain"
            )
            if strict_ids:
                result.problems.append(Problem(msg + " (deleted)", event_id=ev.id))
            else:
                result.warnings.append(msg + " (a rolled-back transaction, if the links hold)")
        if ev.prev_hash != expected_prev:
            before = f"event #{prev.id}" if prev is not None else "the start of the chain"
            result.problems.append(
                Problem(
                    f"{_describe(ev)} does not link to {before}: its prev_hash "
                    f"{ev.prev_hash[:16]}... is not {expected_prev[:16]}...; an event was "
                    "deleted, inserted or moved here",
                    event_id=ev.id,
                )
            )
        recomputed = hash_of(ev)
        if recomputed != ev.hash:
            result.problems.append(
                Problem(
                    f"{_describe(ev)} does not match its own hash: its contents were edited, "
                    "or it was forged",
                    event_id=ev.id,
                )
            )
        prev = ev
    return result


def verify_files(session: Session, result: Verification) -> None:
    """Replay details["set"] of every file event in order and compare with each file row."""
    expected: dict[int, dict[str, tuple[Any, int, str]]] = {}
    q = (
        select(AuditEvent.id, AuditEvent.action, AuditEvent.subject_id, AuditEvent.details)
        .where(AuditEvent.subject_type == "file")
        .order_by(AuditEvent.id)
        .execution_options(yield_per=2000)
    )
    for ev in session.execute(q):
        try:
            file_id = int(ev.subject_id)
            details = json.loads(ev.details)
        except ValueError:
            result.problems.append(
                Problem(f"event #{ev.id} about file {ev.subject_id!r} is unreadable", ev.id)
            )
            continue
        state = expected.setdefault(file_id, {})
        for column, value in (details.get("set") or {}).items():
            state[column] = (value, ev.id, ev.action)
    seen: set[int] = set()
    rows = session.scalars(
        select(Recording).order_by(Recording.id).execution_options(yield_per=500)
    )
    for row in rows:
        result.files_checked += 1
        seen.add(row.id)
        replayed = expected.get(row.id)
        if replayed is None:
            result.problems.append(
                Problem(
                    f"file {row.id} ({row.store_path}) has no audit event: its row was "
                    "written without dockd",
                    file_id=row.id,
                )
            )
            continue
        snapshot = file_snapshot(row)
        for column in AUDITED_FILE_COLUMNS:
            if column not in replayed and snapshot[column] == AUDITED_SINCE.get(column, ...):
                continue  # never set, and as it was before it was audited
            if column not in replayed:
                result.problems.append(
                    Problem(f"file {row.id}: no audit event ever set {column}", file_id=row.id)
                )
                continue
            value, event_id, action = replayed[column]
            if snapshot[column] != value:
                result.problems.append(
                    Problem(
                        f"file {row.id}: {column} is {snapshot[column]!r} in its row but its "
                        f"audit trail says {value!r} (event #{event_id}, {action}): the row was "
                        "changed without an audit event",
                        event_id=event_id,
                        file_id=row.id,
                    )
                )
    for file_id in sorted(set(expected) - seen):
        last = max(e for _, e, _ in expected[file_id].values()) if expected[file_id] else None
        result.problems.append(
            Problem(
                f"file {file_id} has audit events (last #{last}) but no row: the row was deleted",
                event_id=last,
                file_id=file_id,
            )
        )


def verify(
    session: Session, *, against: str | None = None, strict_ids: bool | None = None
) -> Verification:
    """The whole check behind ``dockd audit verify``: chain, file rows, and optionally a
    head written down earlier (``against``), which must still be in the chain."""
    result = verify_chain(session, strict_ids=strict_ids)
    verify_files(session, result)
    if against is not None:
        found = session.scalar(select(AuditEvent.id).where(AuditEvent.hash == against.strip()))
        if found is None and against.strip() != GENESIS:
            result.problems.append(
                Problem(
                    f"the head {against.strip()} written down earlier is no longer in the chain: "
                    "events were removed or the chain was rewritten after it"
                )
            )
    return result
