"""The inspection register 检查台账 (R16): supervisors' checks of how recorders are used.

Supervisors inspect the use of the recorders at least twice a year and spot-check the
records. Each check is one entry: the date, the inspector (the signed-in account,
never a typed name), the devices and files checked, the findings and the follow-up,
audited as ``inspection.record``. The register is read back as a report
(``dockd inspection list``), and the scheduled duties check alerts when none is
recorded within ``[inspection] every_months`` (:func:`last_inspected`).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dockd.auth.roles import Actor
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit, registry
from dockd.ledger.models import Inspection, Recording

COLUMNS = ["id", "date", "inspector", "devices", "files", "findings", "follow_up", "recorded_at"]


def record(
    session: Session,
    *,
    on: date,
    devices: list[str],
    files: list[int],
    findings: str,
    follow_up: str | None,
    actor: Actor,
    at: datetime,
    station: str,
    tz: ZoneInfo,
) -> Inspection:
    """Add one entry to the register; every device and file named must exist."""
    findings = findings.strip()
    if not findings:
        raise UsageError("an inspection needs its findings: --findings TEXT")
    if not devices and not files:
        raise UsageError("name what was inspected: --devices DV-1,DV-2 and/or --files 12,15")
    today = at.astimezone(tz).date()
    if on > today:
        raise UsageError(f"the inspection date {on.isoformat()} is after today ({today})")
    for number in devices:
        registry.device_by_number(session, number)
    if files:
        known = set(session.scalars(select(Recording.id).where(Recording.id.in_(files))))
        missing = [str(f) for f in files if f not in known]
        if missing:
            raise NotFound(f"no file with id {', '.join(missing)}; see `dockd ledger query`")
    row = Inspection(
        station=station,
        inspected_on=on.isoformat(),
        inspector=actor.login,
        devices=json.dumps(devices),
        files=json.dumps(files),
        findings=findings,
        follow_up=(follow_up or "").strip() or None,
        recorded_at=at,
    )
    audit.record_new(
        session,
        row,
        at=at,
        station=station,
        actor=actor.login,
        action="inspection.record",
        subject_type="inspection",
        details={
            "date": row.inspected_on,
            "devices": devices,
            "files": files,
            "findings": findings,
            "follow_up": row.follow_up,
        },
    )
    return row


def register_rows(
    session: Session, tz: ZoneInfo, *, since: date | None = None, until: date | None = None
) -> list[dict[str, Any]]:
    """The register, oldest first, as report rows (``since``/``until``: dates, inclusive)."""
    q = select(Inspection).order_by(Inspection.inspected_on, Inspection.id)
    if since is not None:
        q = q.where(Inspection.inspected_on >= since.isoformat())
    if until is not None:
        q = q.where(Inspection.inspected_on <= until.isoformat())
    return [
        {
            "id": i.id,
            "date": i.inspected_on,
            "inspector": i.inspector,
            "devices": json.loads(i.devices),
            "files": json.loads(i.files),
            "findings": i.findings,
            "follow_up": i.follow_up,
            "recorded_at": i.recorded_at.astimezone(tz).isoformat(timespec="seconds"),
        }
        for i in session.scalars(q)
    ]


def last_inspected(session: Session) -> date | None:
    """The date of the latest inspection recorded (None: none yet)."""
    latest = session.scalar(select(func.max(Inspection.inspected_on)))
    return date.fromisoformat(latest) if latest else None
