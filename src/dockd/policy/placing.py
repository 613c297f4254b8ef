"""Placing and releasing holds: what a person asks for checked, written, and audited.

A hold is placed on exactly one file, case, device or officer (the last two over a
time window), with a reason from the closed list; what cannot be a hold is refused
with what to give instead, and what may be a mistake (a case nobody has tagged yet, a
badge no officer has) is placed but warned about. Releasing never shortens anything:
the files it covered keep their retention. Placing takes the lock the retention
sweep takes a file under (:func:`~dockd.policy.adapter.serialize_with_holds`), so the
two never interleave: the sweep decides each file with every committed hold in view.
Each is an audit event with the whole hold. Reading holds (which are active, what they
cover, how they read) is :mod:`dockd.policy.adapter`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import Case, Device, FileState, Hold, Officer, Recording
from dockd.policy.adapter import serialize_with_holds
from dockd.policy.holds import HoldReason, HoldScope, normalize_reason


@dataclass
class PlacedHold:
    hold: Hold
    warnings: list[str] = field(default_factory=list)


def place_hold(
    session: Session,
    *,
    station: str,
    at: datetime,
    by: str,
    reason: str,
    text_: str | None = None,
    file_id: int | None = None,
    case_number: str | None = None,
    device_ref: str | None = None,
    officer_badge: str | None = None,
    window_from: datetime | None = None,
    window_until: datetime | None = None,
) -> PlacedHold:
    """Place a hold on one file, a case, or a device / officer over a window."""
    try:
        reason = normalize_reason(reason)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not by.strip():
        raise UsageError("say who places the hold (--by NAME)")
    if reason == HoldReason.OTHER and not (text_ or "").strip():
        raise UsageError("reason 'other' needs a text saying why (--text '...')")
    targets = {
        HoldScope.FILE: file_id,
        HoldScope.CASE: case_number,
        HoldScope.DEVICE: device_ref,
        HoldScope.OFFICER: officer_badge,
    }
    given = [k for k, v in targets.items() if v is not None and v != ""]
    if len(given) != 1:
        raise UsageError(
            "a hold is on exactly one of: --file ID, --case NUMBER, --device NUMBER, "
            f"--officer BADGE (got {', '.join(given) or 'none'})"
        )
    scope = given[0]
    warnings: list[str] = []
    if scope in (HoldScope.FILE, HoldScope.CASE):
        if window_from is not None or window_until is not None:
            raise UsageError(f"a {scope} hold has no time window; drop --from/--until")
    else:
        if window_from is None:
            raise UsageError(
                f"a {scope} hold covers a time window: give --from (and --until, "
                "or leave it out while the hold is open-ended)"
            )
        if window_until is not None and window_until <= window_from:
            raise UsageError(
                f"--until {window_until.isoformat()} is not after --from {window_from.isoformat()}"
            )
    if scope == HoldScope.FILE:
        row = session.get(Recording, file_id)
        if row is None:
            raise NotFound(f"no file with id {file_id}; `dockd ledger query` lists them")
        if row.state == FileState.PURGED:
            raise UsageError(
                f"file {file_id} ({row.store_path}) was purged on "
                f"{row.purged_at.isoformat() if row.purged_at else '?'}: nothing is left to hold"
            )
        if row.state == FileState.TRASHED:
            warnings.append(
                f"file {file_id} is in the trash; it is restored now or by the next retention sweep"
            )
    elif scope == HoldScope.CASE:
        known = session.scalar(
            select(Recording.id).where(Recording.case_number == case_number).limit(1)
        ) or session.scalar(select(Case.id).where(Case.case_number == case_number).limit(1))
        if not known:
            warnings.append(
                f"no file or imported case has number {case_number!r} yet; "
                "the hold covers its footage as soon as it is tagged"
            )
    elif scope == HoldScope.DEVICE:
        known = session.scalar(
            select(Device.id).where(Device.number == device_ref).limit(1)
        ) or session.scalar(select(Recording.id).where(Recording.device_ref == device_ref).limit(1))
        if not known:
            warnings.append(f"no device or footage is known as {device_ref!r}; check the number")
    elif session.scalar(select(Officer.id).where(Officer.badge == officer_badge)) is None:
        warnings.append(f"no officer has badge {officer_badge!r}; check the number")

    serialize_with_holds(session)
    hold = Hold(
        reason=reason,
        reason_text=(text_ or "").strip() or None,
        scope=scope,
        file_id=file_id if scope == HoldScope.FILE else None,
        case_number=case_number if scope == HoldScope.CASE else None,
        device_ref=device_ref if scope == HoldScope.DEVICE else None,
        officer_badge=officer_badge if scope == HoldScope.OFFICER else None,
        window_from=window_from,
        window_until=window_until,
        placed_at=at,
        placed_by=by,
    )
    session.add(hold)
    session.flush()
    _audit_hold(session, hold, "hold.add", at=at, station=station, by=by)
    return PlacedHold(hold, warnings)


def release_hold(
    session: Session, hold_id: int, *, station: str, at: datetime, by: str, reason: str
) -> Hold:
    """Release a hold. The files it covered keep their retention: nothing is shortened."""
    if not by.strip():
        raise UsageError("say who releases the hold (--by NAME)")
    if not reason.strip():
        raise UsageError("say why the hold is released (--reason '...')")
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"no hold with id {hold_id}; `dockd hold list --all` shows them")
    if hold.released_at is not None:
        when = hold.released_at.isoformat()
        raise UsageError(f"hold {hold_id} was already released by {hold.released_by} at {when}")
    hold.released_at = at
    hold.released_by = by
    hold.release_reason = reason.strip()
    _audit_hold(
        session, hold, "hold.release", at=at, station=station, by=by, reason=hold.release_reason
    )
    return hold


def _audit_hold(
    session: Session,
    hold: Hold,
    action: str,
    *,
    at: datetime,
    station: str,
    by: str,
    reason: str | None = None,
) -> None:
    """The audit event of placing (or, with the release ``reason``, releasing) a hold."""
    details: dict[str, Any] = {
        "reason": hold.reason,
        "text": hold.reason_text,
        "scope": hold.scope,
        "file_id": hold.file_id,
        "case_number": hold.case_number,
        "device_ref": hold.device_ref,
        "officer_badge": hold.officer_badge,
        "window_from": hold.window_from.isoformat() if hold.window_from else None,
        "window_until": hold.window_until.isoformat() if hold.window_until else None,
    }
    if reason is not None:
        details["release_reason"] = reason
    audit.record_stamped(session, audit.Stamp(at, station, by), action, "hold", hold.id, details)
