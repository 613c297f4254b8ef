"""Reports on what was done to footage: holds (R7), deletions (R9), incomplete dock
sessions (R17) and the access register (R10)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from dockd.config import Config
from dockd.evidence.access import ACCESS_ACTIONS
from dockd.evidence.cases import of_officer
from dockd.ingest.outcome import SessionOutcome
from dockd.ledger.models import AuditEvent, DockSession, FileState, Hold, Officer, Recording
from dockd.policy.holds import HoldScope
from dockd.reports.base import Period, Report, columns, iso


def _covered(session: Session, hold: Hold) -> int:
    """How many stored files the hold covers now (for a person to sanity-check its scope)."""
    conds: list[ColumnElement[bool]] = [Recording.state == FileState.STORED]
    if hold.scope == HoldScope.FILE:
        conds.append(Recording.id == hold.file_id)
    elif hold.scope == HoldScope.CASE:
        conds.append(Recording.case_number == hold.case_number)
    elif hold.scope in (HoldScope.DEVICE, HoldScope.OFFICER):
        if hold.scope == HoldScope.DEVICE:
            conds.append(Recording.device_ref == hold.device_ref)
        else:
            conds.append(of_officer(hold.officer_badge or ""))
        if hold.window_from is not None:
            conds.append(
                func.coalesce(Recording.recorded_end, Recording.recorded_start) >= hold.window_from
            )
        if hold.window_until is not None:
            conds.append(Recording.recorded_start < hold.window_until)
    else:
        return 0
    return session.scalar(select(func.count()).select_from(Recording).where(*conds)) or 0


def holds(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Every hold active at some time in the period (all holds when no period is given)."""
    tz = config.station.tz
    q = select(Hold).order_by(Hold.id)
    if period.end is not None:
        q = q.where(Hold.placed_at < period.end)
    if period.start is not None:
        q = q.where(or_(Hold.released_at.is_(None), Hold.released_at >= period.start))
    rows = []
    for h in session.scalars(q):
        targets: dict[str, str | None] = {
            HoldScope.FILE: str(h.file_id),
            HoldScope.CASE: h.case_number,
            HoldScope.DEVICE: h.device_ref,
            HoldScope.OFFICER: h.officer_badge,
        }
        target = targets.get(h.scope)
        rows.append(
            {
                "id": h.id,
                "active": h.released_at is None,
                "reason": h.reason,
                "reason_text": h.reason_text,
                "scope": h.scope,
                "target": target,
                "window_from": iso(h.window_from, tz),
                "window_until": iso(h.window_until, tz),
                "placed_at": iso(h.placed_at, tz),
                "placed_by": h.placed_by,
                "released_at": iso(h.released_at, tz),
                "released_by": h.released_by,
                "release_reason": h.release_reason,
                "files_covered": _covered(session, h),
            }
        )
    return Report(
        "holds",
        "holds",
        columns(
            "id active reason reason_text scope target window_from window_until placed_at placed_by"
            " released_at released_by release_reason files_covered"
        ),
        rows,
    )


def _events_by_file(session: Session, file_ids: list[int]) -> dict[int, list[AuditEvent]]:
    out: dict[int, list[AuditEvent]] = defaultdict(list)
    if not file_ids:
        return out
    q = (
        select(AuditEvent)
        .where(AuditEvent.subject_type == "file", AuditEvent.subject_id.in_(map(str, file_ids)))
        .order_by(AuditEvent.id)
    )
    for ev in session.scalars(q):
        out[int(ev.subject_id)].append(ev)
    return out


def deletions(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Files trashed or purged (by trash time in the period) and their audit events."""
    tz = config.station.tz
    q = (
        select(Recording, Officer.badge)
        .outerjoin(Officer, Recording.officer_id == Officer.id)
        .where(Recording.state.in_((FileState.TRASHED, FileState.PURGED)))
        .order_by(func.coalesce(Recording.trashed_at, Recording.purged_at), Recording.id)
    )
    q = q.where(*period.where(func.coalesce(Recording.trashed_at, Recording.purged_at)))
    found = list(session.execute(q))
    events = _events_by_file(session, [r.id for r, _ in found])
    rows = [
        {
            "id": r.id,
            "device": r.device_ref,
            "officer": badge or r.badge_hint,
            "recorded_at": iso(r.recorded_start, tz),
            "state": r.state,
            "trashed_at": iso(r.trashed_at, tz),
            "purged_at": iso(r.purged_at, tz),
            "expires_at": iso(r.expires_at, tz),
            "case": r.case_number,
            "blake3": r.blake3,
            "events": [
                f"#{e.id} {iso(e.at, tz)} {e.action} by {e.actor}" for e in events.get(r.id, [])
            ],
        }
        for r, badge in found
    ]
    return Report(
        "deletions",
        "trashed and purged files",
        (
            "id",
            "device",
            "officer",
            "recorded_at",
            "state",
            "trashed_at",
            "purged_at",
            "expires_at",
            "case",
            "blake3",
            "events",
        ),
        rows,
    )


def sessions(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """Dock sessions that did not end complete: partial, failed, interrupted, refused,
    or still marked running (in progress, or dockd stopped mid-session)."""
    tz = config.station.tz
    q = (
        select(DockSession)
        .where(
            DockSession.outcome != SessionOutcome.COMPLETE, *period.where(DockSession.started_at)
        )
        .order_by(DockSession.id)
    )
    rows = [
        {
            "id": d.id,
            "device": d.device_ref,
            "started_at": iso(d.started_at, tz),
            "ended_at": iso(d.ended_at, tz),
            "outcome": d.outcome,
            "seen": d.files_seen,
            "stored": d.files_stored,
            "present": d.files_present,
            "failed": d.files_failed,
            "refused": d.files_refused,
            "quarantined": d.quarantined,
            "problems": [f"{f.source_path}: {f.disposition}: {f.reason}" for f in d.failures],
            "notes": d.notes,
        }
        for d in session.scalars(q)
    ]
    return Report(
        "sessions",
        "incomplete or failed dock sessions",
        columns(
            "id device started_at ended_at outcome seen stored present failed refused quarantined"
            " problems notes"
        ),
        rows,
    )


def access(session: Session, config: Config, period: Period, now: datetime) -> Report:
    """The access register: every view and export, who, why, approved by whom (R10)."""
    tz = config.station.tz
    q = (
        select(AuditEvent)
        .where(AuditEvent.action.in_(ACCESS_ACTIONS), *period.where(AuditEvent.at))
        .order_by(AuditEvent.id)
    )
    rows: list[dict[str, Any]] = []
    for ev in session.scalars(q):
        d = json.loads(ev.details)
        rows.append(
            {
                "event": ev.id,
                "at": iso(ev.at, tz),
                "action": ev.action.removeprefix("file."),
                "file": int(ev.subject_id),
                "by": d.get("by"),
                "for": d.get("on_behalf"),
                "reason": d.get("reason"),
                "approved_by": d.get("approved_by"),
                "restricted": d.get("restricted", False),
                "case": d.get("case"),
                "export_id": d.get("export_id"),
                "bag": d.get("bag"),
            }
        )
    return Report(
        "access",
        "access register: views and exports",
        columns("event at action file by reason approved_by restricted case export_id bag for"),
        rows,
    )
