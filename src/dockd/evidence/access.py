"""The access register (R10, R15): nobody views or copies footage without a name,
a reason and an approver, and every access is an audit event.

The CLI builds the :class:`Access` from the signed-in account and its active grant
(:mod:`dockd.auth.access`: the request's reason, the people who approved it, whether
it covers restricted footage), never from typed names. ``check`` refuses an access
before anything is shown or copied; ``register`` writes one ``file.view`` /
``file.export`` event per file inside the caller's transaction, naming the grant.
Restricted files (access class ``restricted``: state secrets, trade secrets, privacy)
need a grant whose request saw them restricted (the leader's extra step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth import access as grants
from dockd.auth.access import Grant
from dockd.auth.accounts import Stamp
from dockd.auth.roles import Actor
from dockd.config.access import Kind
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.db import Ledger
from dockd.ledger.models import AuditEvent, Recording

AccessAction = Literal["file.view", "file.export"]
ACCESS_ACTIONS: tuple[AccessAction, ...] = get_args(AccessAction)
RESTRICTED = "restricted"


@dataclass(frozen=True)
class Access:
    """Who sees or copies footage, why, who approved it, and under which grant."""

    by: str | None
    reason: str | None
    approved_by: str | None
    restricted_ok: bool = False
    grant_id: int | None = None
    # The party concerned or higher office the access is for (the grant's request).
    on_behalf: str | None = None

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "by": self.by,
            "reason": self.reason,
            "approved_by": self.approved_by,
        }
        if self.grant_id is not None:
            out["grant"] = self.grant_id
        if self.on_behalf is not None:
            out["on_behalf"] = self.on_behalf
        return out


def under_grant(
    ledger: Ledger,
    stamp: Stamp,
    actor: Actor,
    kinds: Sequence[Kind],
    rows: Sequence[Recording],
    *,
    case: str | None = None,
) -> Access:
    """The access ``actor`` makes of ``rows`` under their active grant of one of
    ``kinds`` (the CLI's ``view``/``export`` and the web's playback and download alike).
    No grant: refused, naming the request to make. Only an expired one: the refusal is
    an ``access.expired`` event first, in its own transaction, then refused."""
    try:
        with ledger.read() as s:
            grant = grants.find_grant(s, actor, kinds, rows, stamp.at, case=case)
    except grants.GrantExpired as refused:
        with ledger.session() as s:
            grants.record_expired(s, stamp, refused, kinds[0])
        raise
    return access_of(grant, actor.login)


def access_of(grant: Grant, login: str) -> Access:
    """The access ``login`` makes under ``grant``: its reason, approvers, restricted
    footage if its request covered it, and whom it is for."""
    return Access(
        by=login,
        reason=grant.reason,
        approved_by=", ".join(grant.approved_by),
        restricted_ok=grant.restricted,
        grant_id=grant.id,
        on_behalf=grant.on_behalf.describe() if grant.on_behalf is not None else None,
    )


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def check(access: Access, rows: Sequence[Recording], *, what: str) -> None:
    """Refuse the access unless it names a person, a reason and an approver (and
    confirms restricted files). ``what`` is the verb shown in messages."""
    missing = [
        flag
        for flag, value in (
            ("--by (who)", access.by),
            ("--reason (why)", access.reason),
            ("--approved-by (who approved it)", access.approved_by),
        )
        if _blank(value)
    ]
    if missing:
        raise UsageError(
            f"{what} footage must be registered: give {', '.join(missing)}. "
            "Access without a reason and an approver is refused (R10)"
        )
    assert access.by is not None and access.approved_by is not None
    if access.by.strip().casefold() == access.approved_by.strip().casefold():
        raise UsageError(
            f"{access.by} cannot approve their own access; --approved-by must name someone else"
        )
    restricted = [r.id for r in rows if r.access_class == RESTRICTED]
    if restricted and not access.restricted_ok:
        raise UsageError(
            f"file(s) {', '.join(map(str, restricted))} are restricted (secrets or privacy, R15): "
            "the grant must come from a request that covered restricted footage (the leader "
            "approves it in addition); ask again with `sudo dockd access request`"
        )


def files_by_id(session: Session, file_ids: Sequence[int]) -> list[Recording]:
    """The rows for ``file_ids`` in the order given; NotFound names the missing ids."""
    rows = {r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(file_ids)))}
    missing = [i for i in file_ids if i not in rows]
    if missing:
        raise NotFound(
            f"no file with id {', '.join(map(str, missing))}; `dockd ledger query` lists them"
        )
    return [rows[i] for i in dict.fromkeys(file_ids)]


def register(
    session: Session,
    rows: Sequence[Recording],
    access: Access,
    *,
    action: AccessAction,
    at: datetime,
    extra: dict[str, Any] | None = None,
) -> list[AuditEvent]:
    """One audit event per file: who, why, approved by whom (no file column changes)."""
    if action not in ACCESS_ACTIONS:
        raise ValueError(f"action {action!r} not in {ACCESS_ACTIONS}")
    assert access.by is not None
    events = []
    for row in rows:
        details = access.details()
        details["restricted"] = row.access_class == RESTRICTED
        details["case"] = row.case_number
        details.update(extra or {})
        events.append(
            audit.record(
                session,
                at=at,
                station=row.station,
                actor=access.by.strip(),
                action=action,
                subject_type="file",
                subject_id=row.id,
                details=details,
            )
        )
    return events


def view(
    session: Session, file_id: int, access: Access, *, at: datetime
) -> tuple[Recording, AuditEvent]:
    """Register a view of one file and return its row (the caller prints where it is)."""
    (row,) = files_by_id(session, [file_id])
    if row.state == "purged":
        raise NotFound(f"file {file_id} was purged by retention; only its ledger row remains")
    check(access, [row], what="viewing")
    (event,) = register(session, [row], access, action="file.view", at=at)
    return row, event


def access_events(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[AuditEvent]:
    """Every registered view and export, oldest first."""
    q = select(AuditEvent).where(AuditEvent.action.in_(ACCESS_ACTIONS)).order_by(AuditEvent.id)
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if until is not None:
        q = q.where(AuditEvent.at < until)
    return list(session.scalars(q))
