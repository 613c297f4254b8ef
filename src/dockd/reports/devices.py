"""Recorders against the people who wear them: coverage per unit (004 管理办法 §3) and
who keeps each recorder (定人管理, §8).

A unit must hold at least one recorder in service per ``[reports] officers_per_device``
officers (three, or five where the agency's rule says so). A recorder in service is
registered by the report's date and not retired, lost or disposed by then. The report
also counts the recorders nobody is named custodian of, and those not assigned to an
officer at that date.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.ledger.models import Assignment, Device, Officer
from dockd.reports.base import Period, Report, columns

COVERAGE = columns(
    "unit officers devices_in_service officers_per_device limit meets without_custodian unassigned"
)


def coverage(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """One row per unit, as of the period's end (or now)."""
    as_of = min(period.end, now) if period.end is not None else now
    station_unit = config.station.unit
    limit = config.reports.officers_per_device
    officers = Counter(
        u or station_unit
        for u in session.scalars(select(Officer.unit).where(Officer.created_at <= as_of))
    )
    in_service = list(
        session.execute(
            select(Device.id, Device.unit, Device.custodian).where(
                Device.registered_at <= as_of,
                or_(Device.retired_at.is_(None), Device.retired_at > as_of),
            )
        )
    )
    held = set(
        session.scalars(
            select(Assignment.device_id).where(
                Assignment.valid_from <= as_of,
                or_(Assignment.valid_until.is_(None), Assignment.valid_until > as_of),
            )
        )
    )
    devices: Counter[str] = Counter()
    keeperless: Counter[str] = Counter()
    unassigned: Counter[str] = Counter()
    for dev_id, unit, custodian in in_service:
        u = unit or station_unit
        devices[u] += 1
        keeperless[u] += custodian is None
        unassigned[u] += dev_id not in held
    rows = []
    for unit in sorted(set(officers) | set(devices)):
        n_off, n_dev = officers[unit], devices[unit]
        ratio = round(n_off / n_dev, 1) if n_dev else None
        meets = n_off == 0 or (n_dev > 0 and n_off <= n_dev * limit)
        rows.append(
            {
                "unit": unit,
                "officers": n_off,
                "devices_in_service": n_dev,
                "officers_per_device": ratio,
                "limit": limit,
                "meets": "yes" if meets else "NO",
                "without_custodian": keeperless[unit],
                "unassigned": unassigned[unit],
            }
        )
    title = f"recorders per unit as of {as_of.astimezone(config.station.tz):%Y-%m-%d %H:%M}"
    return Report("coverage", title, COVERAGE, rows)
