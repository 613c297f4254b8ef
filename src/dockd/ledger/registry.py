"""Devices, officers and who held which device when (R1, R14).

Each write is audited. Look-ups are pure reads the ingest pipeline uses to tie a
recording to a device number and the officer responsible for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.ledger import attribution, audit
from dockd.ledger.models import Assignment, Base, Device, Officer


def _add_audited(
    session: Session,
    row: Base | None,
    event: tuple[str, str, str],
    details: dict[str, Any],
    *,
    at: datetime,
    station: str,
    actor: str,
    taken: str | None = None,
) -> None:
    """Add ``row`` (None: already changed in the session) and audit it as ``event``
    (action, subject type, subject id).

    ``taken`` is the message for a unique column that a concurrent writer took first.
    """
    if row is not None:
        session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        if taken is None:
            raise
        raise UsageError(taken) from exc
    action, subject_type, subject_id = event
    audit.record(
        session,
        at=at,
        station=station,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
    )


def add_device(
    session: Session,
    *,
    number: str,
    at: datetime,
    station: str,
    actor: str,
    serial: str | None = None,
    fs_uuid: str | None = None,
    fs_label: str | None = None,
    brand: str | None = None,
    model: str | None = None,
    unit: str | None = None,
    in_service_since: datetime | None = None,
) -> Device:
    """Register a recorder under its device number. ``in_service_since``: the recorder was
    in use before it was registered (a station going live on dockd): its registration
    date is set back to then, so footage from then on is not doubted for predating it."""
    if in_service_since is not None and in_service_since > at:
        raise UsageError("--in-service-since is in the future: give the day it went into use")
    if session.scalar(select(Device).where(Device.number == number)) is not None:
        raise UsageError(f"device {number} is already registered; `dockd devices list` shows it")
    if serial and session.scalar(select(Device).where(Device.serial == serial)) is not None:
        raise UsageError(f"serial {serial} already belongs to another device")
    # What identifies and describes it: the row's columns and the audit event's details.
    known = {
        "serial": serial,
        "fs_uuid": fs_uuid,
        "fs_label": fs_label,
        "brand": brand,
        "model": model,
        "unit": unit,
    }
    dev = Device(number=number, registered_at=in_service_since or at, **known)
    if in_service_since is not None:
        known["in_service_since"] = in_service_since.isoformat()
    taken = f"device {number} or serial {serial} is already registered"  # a concurrent one
    event = ("device.add", "device", number)
    _add_audited(session, dev, event, known, at=at, station=station, actor=actor, taken=taken)
    return dev


def add_officer(
    session: Session,
    *,
    badge: str,
    name: str,
    at: datetime,
    station: str,
    actor: str,
    unit: str | None = None,
) -> Officer:
    if session.scalar(select(Officer).where(Officer.badge == badge)) is not None:
        raise UsageError(f"badge {badge} is already registered; `dockd officers list` shows it")
    off = Officer(badge=badge, name=name, unit=unit, created_at=at)
    details = {"name": name, "unit": unit}
    event = ("officer.add", "officer", badge)
    _add_audited(session, off, event, details, at=at, station=station, actor=actor)
    return off


def device_by_number(session: Session, number: str) -> Device:
    dev = session.scalar(select(Device).where(Device.number == number))
    if dev is None:
        raise NotFound(f"no device numbered {number!r}; register it with `dockd devices add`")
    return dev


def find_officer(session: Session, badge: str) -> Officer | None:
    return session.scalar(select(Officer).where(Officer.badge == badge))


def officer_by_badge(session: Session, badge: str) -> Officer:
    off = find_officer(session, badge)
    if off is None:
        raise NotFound(f"no officer with badge {badge!r}; register with `dockd officers add`")
    return off


@dataclass(frozen=True)
class Change:
    """An assignment made or ended, the one it closed, and how many files it re-attributed."""

    assignment: Assignment | None
    closed: Assignment | None = None
    reattributed: int = 0


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def assign(
    session: Session,
    *,
    device_number: str,
    badge: str,
    valid_from: datetime,
    valid_until: datetime | None,
    at: datetime,
    station: str,
    actor: str,
    close_previous: bool = False,
) -> Change:
    """Record that an officer holds a device over a time range.

    Ranges of one device may not overlap: at any instant one officer is
    responsible for a recorder ("whoever wears it is responsible"). With
    ``close_previous`` an open assignment that started earlier is ended at
    ``valid_from`` instead. The device's files recorded in the window are
    re-attributed to the officer in force at their recording time.
    """
    if valid_until is not None and valid_until <= valid_from:
        raise UsageError("an assignment must end after it starts (--until after --from)")
    dev = device_by_number(session, device_number)
    off = officer_by_badge(session, badge)
    q = (
        select(Assignment)
        .where(Assignment.device_id == dev.id)
        .where(or_(Assignment.valid_until.is_(None), Assignment.valid_until > valid_from))
    )
    if valid_until is not None:
        q = q.where(Assignment.valid_from < valid_until)
    overlaps = list(session.scalars(q.order_by(Assignment.valid_from).limit(2)))
    closed: Assignment | None = None
    if close_previous and len(overlaps) == 1 and _closable(overlaps[0], valid_from):
        closed = overlaps[0]
        _end(session, dev, closed, valid_from, at=at, station=station, actor=actor)
    elif overlaps:
        overlap = overlaps[0]
        end = overlap.valid_until.isoformat() if overlap.valid_until else "open-ended"
        hint = "" if close_previous else " (or give --close-previous)"
        raise UsageError(
            f"device {device_number} is already assigned to badge {overlap.officer.badge} "
            f"from {overlap.valid_from.isoformat()} until {end}; end that assignment first{hint}"
        )
    a = Assignment(
        device_id=dev.id,
        officer_id=off.id,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=at,
        created_by=actor,
    )
    details = {"badge": badge, "from": valid_from.isoformat(), "until": _iso(valid_until)}
    event = ("device.assign", "device", device_number)
    _add_audited(session, a, event, details, at=at, station=station, actor=actor)
    window = (valid_from, None if closed is not None else valid_until)
    reason = f"assignment of {device_number} to badge {badge}"
    moved = attribution.reattribute(session, dev.id, window, at=at, actor=actor, reason=reason)
    return Change(a, closed, moved)


def _closable(a: Assignment, when: datetime) -> bool:
    """An open assignment that started before ``when`` can be ended at ``when``."""
    return a.valid_until is None and a.valid_from < when


def _end(
    session: Session,
    dev: Device,
    a: Assignment,
    when: datetime,
    *,
    at: datetime,
    station: str,
    actor: str,
    reason: str | None = None,
) -> None:
    """End the assignment at ``when``, audited with its old and new ``valid_until``."""
    old = a.valid_until
    a.valid_until = when
    details = {
        "badge": a.officer.badge,
        "from": a.valid_from.isoformat(),
        "old_until": _iso(old),
        "new_until": when.isoformat(),
        "reason": reason,
    }
    event = ("assign.end", "device", dev.number)
    _add_audited(session, None, event, details, at=at, station=station, actor=actor)


def open_assignment(session: Session, device_id: int) -> Assignment | None:
    return session.scalar(
        select(Assignment)
        .where(Assignment.device_id == device_id, Assignment.valid_until.is_(None))
        .limit(1)
    )


def end_assignment(
    session: Session,
    *,
    device_number: str,
    when: datetime,
    at: datetime,
    station: str,
    actor: str,
    reason: str | None = None,
) -> Change:
    """End the device's open assignment at ``when``; its files recorded from then on
    are re-attributed (to nobody but the badge in their name)."""
    dev = device_by_number(session, device_number)
    a = open_assignment(session, dev.id)
    if a is None:
        raise UsageError(f"device {device_number} has no open assignment to end")
    if not _closable(a, when):
        raise UsageError(
            f"the assignment of {device_number} to badge {a.officer.badge} starts "
            f"{a.valid_from.isoformat()}: it can only end after that"
        )
    _end(session, dev, a, when, at=at, station=station, actor=actor, reason=reason)
    why = reason or f"assignment of {device_number} to badge {a.officer.badge} ended"
    moved = attribution.reattribute(session, dev.id, (when, None), at=at, actor=actor, reason=why)
    return Change(a, None, moved)


# Disposed: scrapped (报废), written off for good (dockd devices dispose, ledger/devicelife).
RETIRE_REASONS = ("retired", "lost", "disposed")


def retire_device(
    session: Session,
    *,
    device_number: str,
    kind: str,
    when: datetime,
    reason: str,
    at: datetime,
    station: str,
    actor: str,
    reference: str | None = None,
) -> Change:
    """Mark a device retired, lost or disposed from ``when`` (audited old and new); its
    open assignment ends then. Such a device that docks is still taken, alerted."""
    if kind not in RETIRE_REASONS:
        raise UsageError(f"a device is retired, lost or disposed, not {kind!r}")
    dev = device_by_number(session, device_number)
    later = open_assignment(session, dev.id)
    if later is not None and not _closable(later, when):
        raise UsageError(
            f"device {device_number} is assigned to badge {later.officer.badge} from "
            f"{later.valid_from.isoformat()}, after {when.isoformat()}: correct or end that "
            "assignment first, or give a later --at"
        )
    old = {"retired_at": _iso(dev.retired_at), "retired_reason": dev.retired_reason}
    dev.retired_at, dev.retired_reason = when, kind
    new = {"retired_at": when.isoformat(), "retired_reason": kind}
    details = {"old": old, "new": new, "reason": reason}
    if reference is not None:
        details["reference"] = reference
    event = (f"device.{kind}", "device", device_number)
    _add_audited(session, None, event, details, at=at, station=station, actor=actor)
    a = open_assignment(session, dev.id)
    if a is None or not _closable(a, when):
        return Change(None)
    _end(session, dev, a, when, at=at, station=station, actor=actor, reason=f"{kind}: {reason}")
    why = f"device {device_number} {kind}: {reason}"
    moved = attribution.reattribute(session, dev.id, (when, None), at=at, actor=actor, reason=why)
    return Change(a, None, moved)


officer_at = attribution.officer_at


def devices_matching(session: Session, kind: str, value: str) -> list[Device]:
    """Registered devices whose ``kind`` identifier (number, serial, fs_uuid, fs_label) is
    ``value``; at most two are returned (two already make it ambiguous)."""
    column = {
        "number": Device.number,
        "serial": Device.serial,
        "fs_uuid": Device.fs_uuid,
        "fs_label": Device.fs_label,
    }[kind]
    return list(session.scalars(select(Device).where(column == value).order_by(Device.id).limit(2)))


def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.number)))


def list_officers(session: Session) -> list[Officer]:
    return list(session.scalars(select(Officer).order_by(Officer.badge)))


def list_assignments(session: Session, device_number: str | None = None) -> list[Assignment]:
    q = select(Assignment).order_by(Assignment.device_id, Assignment.valid_from)
    if device_number is not None:
        q = q.where(Assignment.device_id == device_by_number(session, device_number).id)
    return list(session.scalars(q))
