"""A recorder's life after registration: its custodian, service record and disposal.

The regulations want each recorder kept by a named person (定人管理, 004 管理办法 §8)
and a history of maintenance, repair and disposal (报废; 004 管理办法 §16, 000 §13,
001 §14). The custodian is an account (a person dockd knows, not typed text); every
entry is a ``device_events`` row and an audit event naming who recorded it.
:func:`history` joins those entries with the registry's own audited changes
(registration, assignments, retirement) into one account of the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.ledger import audit, registry
from dockd.ledger.models import Account, Assignment, Device, DeviceEvent

SERVICE_KINDS = ("maintenance", "repair")


@dataclass(frozen=True)
class Entry:
    """One line of a device's history."""

    at: datetime
    what: str
    detail: str
    by: str | None = None
    reference: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "what": self.what,
            "detail": self.detail,
            "by": self.by,
            "reference": self.reference,
        }


def _event(
    session: Session,
    dev: Device,
    kind: str,
    *,
    when: datetime,
    note: str,
    reference: str | None,
    at: datetime,
    station: str,
    actor: str,
    details: dict[str, Any] | None,
) -> DeviceEvent:
    """The service-record row, and its audit event unless ``details`` is None (the
    change is audited already, as the registry's own)."""
    row = DeviceEvent(
        device_id=dev.id,
        kind=kind,
        happened_at=when,
        note=note,
        reference=reference,
        recorded_at=at,
        recorded_by=actor,
    )
    session.add(row)
    session.flush()
    if details is None:
        return row
    audit.record(
        session,
        at=at,
        station=station,
        actor=actor,
        action=f"device.{kind}",
        subject_type="device",
        subject_id=dev.number,
        details={**details, "event": row.id, "happened_at": when.isoformat()},
    )
    return row


def set_custodian(
    session: Session,
    *,
    device_number: str,
    login: str,
    reason: str,
    at: datetime,
    station: str,
    actor: str,
) -> Device:
    """Name the account answerable for a recorder in service."""
    dev = registry.device_by_number(session, device_number)
    if dev.retired_at is not None:
        raise UsageError(
            f"device {device_number} is {dev.retired_reason or 'retired'}: a custodian is "
            "named only for a recorder in service"
        )
    account = session.scalar(select(Account).where(Account.login == login))
    if account is None:
        raise NotFound(
            f"no account {login!r}: a custodian is a person dockd knows; add them with "
            f"`sudo dockd users add {login} --name NAME --role custodian`"
        )
    if account.disabled_at is not None:
        raise UsageError(f"account {login} is disabled: name an active account as custodian")
    if dev.custodian == login:
        raise UsageError(f"{login} is already the custodian of device {device_number}")
    old, dev.custodian = dev.custodian, login
    _event(
        session,
        dev,
        "custodian",
        when=at,
        note=f"{old or 'nobody'} -> {login}: {reason}",
        reference=None,
        at=at,
        station=station,
        actor=actor,
        details={"old": old, "new": login, "reason": reason},
    )
    return dev


def record_service(
    session: Session,
    *,
    device_number: str,
    kind: str,
    when: datetime,
    note: str,
    reference: str | None,
    at: datetime,
    station: str,
    actor: str,
) -> DeviceEvent:
    """Enter maintenance or a repair done on a recorder (``when``: when it was done)."""
    if kind not in SERVICE_KINDS:
        raise UsageError(f"a service entry is {' or '.join(SERVICE_KINDS)}, not {kind!r}")
    if not note.strip():
        raise UsageError("say what was done (--note): the service record is read by auditors")
    if when > at:
        raise UsageError(f"{when.isoformat()} is in the future: enter service once it is done")
    dev = registry.device_by_number(session, device_number)
    details = {"note": note, "reference": reference}
    return _event(
        session,
        dev,
        kind,
        when=when,
        note=note,
        reference=reference,
        at=at,
        station=station,
        actor=actor,
        details=details,
    )


def dispose(
    session: Session,
    *,
    device_number: str,
    when: datetime,
    reason: str,
    reference: str | None,
    at: datetime,
    station: str,
    actor: str,
) -> registry.Change:
    """Write a recorder off for good (报废): retired as ``disposed`` from ``when`` (its
    open assignment ends then) and an entry in its service record."""
    change = registry.retire_device(
        session,
        device_number=device_number,
        kind="disposed",
        when=when,
        reason=reason,
        at=at,
        station=station,
        actor=actor,
        reference=reference,
    )
    dev = registry.device_by_number(session, device_number)
    _event(
        session,
        dev,
        "disposed",
        when=when,
        note=reason,
        reference=reference,
        at=at,
        station=station,
        actor=actor,
        details=None,  # audited as device.disposed by retire_device
    )
    return change


def history(session: Session, device_number: str) -> list[Entry]:
    """Everything known of one recorder, in time order: registration, assignments,
    custodians, service, retirement, loss or disposal."""
    dev = registry.device_by_number(session, device_number)
    out = [Entry(dev.registered_at, "registered", _described(dev))]
    for a in session.scalars(
        select(Assignment).where(Assignment.device_id == dev.id).order_by(Assignment.valid_from)
    ):
        who = f"badge {a.officer.badge} ({a.officer.name})"
        out.append(Entry(a.valid_from, "assigned", f"to {who}"))
        if a.valid_until is not None:
            out.append(Entry(a.valid_until, "unassigned", f"from {who}"))
    for e in session.scalars(select(DeviceEvent).where(DeviceEvent.device_id == dev.id)):
        out.append(Entry(e.happened_at, e.kind, e.note, e.recorded_by, e.reference))
    if dev.retired_at is not None and dev.retired_reason != "disposed":
        out.append(Entry(dev.retired_at, dev.retired_reason or "retired", "out of service"))
    return sorted(out, key=lambda e: e.at)


def _described(dev: Device) -> str:
    parts = [p for p in (dev.brand, dev.model) if p]
    if dev.serial:
        parts.append(f"serial {dev.serial}")
    if dev.unit:
        parts.append(f"unit {dev.unit}")
    return ", ".join(parts) or "-"
