"""Written explanations of missing footage (R12): a gap, or a recording not made at all.

The regulations ask that a recording which broke off, or was never made, be explained
in writing with its reason, and that the explanation be approved. An explanation is
written by the signed-in account (never a name typed on the command line) and approved
by another account holding the leader or legal role: nobody approves their own. The
gap report (:func:`dockd.reports.footage.gaps`) shows, for each gap, the explanation
that covers it (:func:`covering`); the scheduled duties check alerts on gaps left
unexplained too long.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth.roles import Actor, Role
from dockd.errors import NotFound, NotPermitted, UsageError
from dockd.ledger import audit, registry
from dockd.ledger.models import Explanation

APPROVERS = frozenset({Role.LEADER, Role.LEGAL})


class ExplanationKind(StrEnum):
    GAP = "gap"
    NON_RECORDING = "non-recording"


class Standing(StrEnum):
    """Whether a gap is explained: by an approved explanation, one awaiting approval, none."""

    APPROVED = "approved"
    PENDING = "pending"
    NO = "no"


def standing(e: Explanation | None) -> Standing:
    if e is None:
        return Standing.NO
    return Standing.APPROVED if e.approved_by else Standing.PENDING


def write(
    session: Session,
    *,
    kind: ExplanationKind,
    reason: str,
    start: datetime,
    end: datetime,
    actor: Actor,
    at: datetime,
    station: str,
    device: str | None = None,
    officer: str | None = None,
) -> Explanation:
    """Record an explanation written by ``actor`` (audited as ``explanation.add``)."""
    reason = reason.strip()
    if not reason:
        raise UsageError("an explanation needs its reason: --reason TEXT")
    if device is None and officer is None:
        raise UsageError("name what is explained: --device NUMBER or --officer BADGE")
    if end < start:
        raise UsageError(
            f"the span ends ({end.isoformat()}) before it starts ({start.isoformat()})"
        )
    if device is not None:
        registry.device_by_number(session, device)
    if officer is not None:
        registry.officer_by_badge(session, officer)
    row = Explanation(
        kind=kind.value,
        device_ref=device,
        officer_badge=officer,
        start_at=start,
        end_at=end,
        reason=reason,
        station=station,
        written_by=actor.login,
        written_at=at,
    )
    audit.record_new(
        session,
        row,
        at=at,
        station=station,
        actor=actor.login,
        action="explanation.add",
        subject_type="explanation",
        details={
            "kind": kind.value,
            "device": device,
            "officer": officer,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "reason": reason,
        },
    )
    return row


def approve(
    session: Session, explanation_id: int, *, actor: Actor, at: datetime, station: str
) -> Explanation:
    """Approve an explanation: by a leader or legal, never its writer (``explanation.approve``)."""
    row = session.get(Explanation, explanation_id)
    if row is None:
        raise NotFound(f"no explanation #{explanation_id}; see `dockd explain list`")
    if row.approved_by is not None:
        raise UsageError(f"explanation #{explanation_id} was already approved by {row.approved_by}")
    if row.written_by == actor.login:
        raise NotPermitted(
            f"explanation #{explanation_id} was written by {actor.login}: nobody approves "
            "their own; another account with the leader or legal role approves it"
        )
    if not actor.roles & APPROVERS:
        raise NotPermitted(
            f"approving an explanation needs the role leader or legal; {actor.describe()}"
        )
    row.approved_by = actor.login
    row.approved_at = at
    audit.record(
        session,
        at=at,
        station=station,
        actor=actor.login,
        action="explanation.approve",
        subject_type="explanation",
        subject_id=row.id,
        details={"written_by": row.written_by, "roles": sorted(actor.roles & APPROVERS)},
    )
    return row


def listed(
    session: Session,
    *,
    pending: bool = False,
    device: str | None = None,
    officer: str | None = None,
) -> list[Explanation]:
    q = select(Explanation).order_by(Explanation.id)
    if pending:
        q = q.where(Explanation.approved_by.is_(None))
    if device is not None:
        q = q.where(Explanation.device_ref == device)
    if officer is not None:
        q = q.where(Explanation.officer_badge == officer)
    return list(session.scalars(q))


def as_row(e: Explanation, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": e.id,
        "kind": e.kind,
        "device": e.device_ref,
        "officer": e.officer_badge,
        "from": e.start_at.astimezone(tz).isoformat(timespec="seconds"),
        "to": e.end_at.astimezone(tz).isoformat(timespec="seconds"),
        "reason": e.reason,
        "written_by": e.written_by,
        "written_at": e.written_at.astimezone(tz).isoformat(timespec="seconds"),
        "approved_by": e.approved_by,
        "approved_at": (
            e.approved_at.astimezone(tz).isoformat(timespec="seconds") if e.approved_at else None
        ),
    }


LIST_COLUMNS = [
    "id",
    "kind",
    "device",
    "officer",
    "from",
    "to",
    "reason",
    "written_by",
    "written_at",
    "approved_by",
    "approved_at",
]


def gap_explanations(session: Session, lo: datetime, hi: datetime) -> list[Explanation]:
    """The gap explanations overlapping ``[lo, hi]``: those a gap in it may be covered by."""
    return list(
        session.scalars(
            select(Explanation)
            .where(
                Explanation.kind == ExplanationKind.GAP.value,
                Explanation.start_at <= hi,
                Explanation.end_at >= lo,
            )
            .order_by(Explanation.id)
        )
    )


def covering(
    candidates: Iterable[Explanation],
    *,
    device: str | None,
    officer: str | None,
    start: datetime,
    end: datetime,
) -> Explanation | None:
    """The explanation covering a gap of ``device`` (worn by ``officer``) from ``start`` to
    ``end``: one of that device or officer whose span holds the whole gap; an approved
    one before one awaiting approval, the first written before later ones."""
    found = [
        e
        for e in candidates
        if (
            (e.device_ref is not None and e.device_ref == device)
            or (e.officer_badge is not None and e.officer_badge == officer)
        )
        and e.start_at <= start
        and e.end_at >= end
    ]
    found.sort(key=lambda e: (e.approved_by is None, e.id))
    return found[0] if found else None


class Index:
    """Candidate explanations by device and by officer: :func:`covering` for many gaps,
    each asking only the explanations of its device or officer, not all of them."""

    def __init__(self, candidates: Iterable[Explanation]) -> None:
        self._device: dict[str, list[Explanation]] = {}
        self._officer: dict[str, list[Explanation]] = {}
        for e in candidates:
            if e.device_ref is not None:
                self._device.setdefault(e.device_ref, []).append(e)
            if e.officer_badge is not None:
                self._officer.setdefault(e.officer_badge, []).append(e)

    def covering(
        self, *, device: str | None, officer: str | None, start: datetime, end: datetime
    ) -> Explanation | None:
        """:func:`covering` of the candidates."""
        mine = self._device.get(device, []) if device is not None else []
        worn = self._officer.get(officer, []) if officer is not None else []
        if not mine and not worn:
            return None
        # one of this device and this officer both is in both lists: asked once
        either = {id(e): e for e in (*mine, *worn)}.values()
        return covering(either, device=device, officer=officer, start=start, end=end)
