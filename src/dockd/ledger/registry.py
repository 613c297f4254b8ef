"""Devices, officers and who held which device when (R1, R14).

Each write is audited. Look-ups are pure reads the ingest pipeline uses to tie a
recording to a device number and the officer responsible for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import Assignment, Base, Device, Officer


def _add_audited(
    session: Session,
    row: Base,
    event: tuple[str, str, str],
    details: dict[str, Any],
    *,
    at: datetime,
    station: str,
    actor: str,
    taken: str | None = None,
) -> None:
    """Add ``row`` and audit it as ``event`` (action, subject type, subject id).

    ``taken`` is the message for a unique column that a concurrent writer took first.
    """
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
) -> Device:
    """Register a recorder under its device number."""
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
    dev = Device(number=number, registered_at=at, **known)
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
) -> Assignment:
    """Record that an officer holds a device over a time range.

    Ranges of one device may not overlap: at any instant one officer is
    responsible for a recorder ("whoever wears it is responsible").
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
    overlap = session.scalar(q.limit(1))
    if overlap is not None:
        end = overlap.valid_until.isoformat() if overlap.valid_until else "open-ended"
        raise UsageError(
            f"device {device_number} is already assigned to badge {overlap.officer.badge} "
            f"from {overlap.valid_from.isoformat()} until {end}; end that assignment first"
        )
    a = Assignment(
        device_id=dev.id,
        officer_id=off.id,
        valid_from=valid_from,
        valid_until=valid_until,
        created_at=at,
        created_by=actor,
    )
    until = valid_until.isoformat() if valid_until else None
    details = {"badge": badge, "from": valid_from.isoformat(), "until": until}
    event = ("device.assign", "device", device_number)
    _add_audited(session, a, event, details, at=at, station=station, actor=actor)
    return a


def officer_at(session: Session, device_id: int, when: datetime) -> Officer | None:
    """The officer who held the device at ``when``, if any assignment covers it."""
    return session.scalar(
        select(Officer)
        .join(Assignment, Assignment.officer_id == Officer.id)
        .where(Assignment.device_id == device_id, Assignment.valid_from <= when)
        .where(or_(Assignment.valid_until.is_(None), Assignment.valid_until > when))
        .limit(1)
    )


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
