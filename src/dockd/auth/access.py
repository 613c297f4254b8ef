"""Access requests and grants: nobody views or copies footage without approvals (issue 12).

A person asks (``access request``: a case or files, a kind, a reason); the request
takes the steps of its kind's rule in ``[access]`` (plus the restricted steps when
any covered file is restricted); people whose roles fill a step approve it; once every
step has an approval, each from a different person and never the requester, the
request is a grant until ``expires_at``. A denial closes it. ``dockd view`` and
``dockd export`` find the requester's active grant here (:func:`find_grant`) and the
access register names it. Every step is an event in the audit chain.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth.accounts import Stamp
from dockd.auth.roles import Actor
from dockd.config.access import KINDS, AccessConfig, Kind, Steps
from dockd.errors import NotFound, NotPermitted, UsageError
from dockd.ledger import audit
from dockd.ledger.models import AccessDecision, AccessRequest, Recording

PENDING, GRANTED, DENIED = "pending", "granted", "denied"
APPROVE, DENY = "approve", "deny"
RESTRICTED = "restricted"


def parse_kind(word: str) -> Kind:
    for kind in KINDS:
        if word == kind:
            return kind
    raise UsageError(f"{word!r} is not a kind of access; the kinds are: {', '.join(KINDS)}")


def _audit(
    session: Session, stamp: Stamp, action: str, req: AccessRequest, details: dict[str, Any]
) -> None:
    audit.record_stamped(session, stamp, action, "access_request", req.id, details)


def steps_of(req: AccessRequest) -> Steps:
    return tuple(tuple(step) for step in json.loads(req.steps))


def files_of(req: AccessRequest) -> tuple[int, ...]:
    return tuple(json.loads(req.file_ids)) if req.file_ids else ()


def describe_target(req: AccessRequest) -> str:
    if req.case_number is not None:
        return f"case {req.case_number}"
    return "file " + ", ".join(map(str, files_of(req)))


def request_command(kind: str, *, file_ids: Sequence[int] = (), case: str | None = None) -> str:
    """The command that asks for the access a refusal was about."""
    what = f"--case {shlex.quote(case)}" if case else " ".join(f"--file {i}" for i in file_ids)
    return f"sudo dockd access request {what} --kind {kind} --reason 'WHY'"


# ----------------------------------------------------------------------------- request


def _covered_rows(
    session: Session, *, file_ids: Sequence[int], case: str | None
) -> list[Recording]:
    if bool(file_ids) == bool(case):
        raise UsageError("give either --case NO or --file ID (not both, not neither)")
    if case:
        rows = list(session.scalars(select(Recording).where(Recording.case_number == case)))
        if not rows:
            raise NotFound(f"no footage is tagged with case {case!r}; see `dockd tag`")
        return rows
    found = {r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(file_ids)))}
    missing = [i for i in file_ids if i not in found]
    if missing:
        raise NotFound(
            f"no file with id {', '.join(map(str, missing))}; `dockd ledger query` lists them"
        )
    return list(found.values())


ON_BEHALF_KINDS = ("party", "office")


@dataclass(frozen=True)
class OnBehalf:
    """Someone outside the station a request is made for (004 全过程 §27, 001 §20): the
    party concerned (当事人) or a higher office (上级机关), and the document it rests on."""

    kind: str  # party | office
    name: str
    reference: str

    def __post_init__(self) -> None:
        if self.kind not in ON_BEHALF_KINDS:
            raise UsageError(f"a request is on behalf of a party or an office, not {self.kind!r}")
        if not self.name.strip() or not self.reference.strip():
            raise UsageError(
                f"a request for a {self.kind} names them and the document it rests on "
                "(--reference: identity document, official letter number)"
            )

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.reference})"


def on_behalf_of(req: AccessRequest) -> OnBehalf | None:
    if req.on_behalf_kind is None:
        return None
    return OnBehalf(req.on_behalf_kind, req.on_behalf_name or "", req.on_behalf_ref or "")


def request_access(
    session: Session,
    stamp: Stamp,
    policy: AccessConfig,
    *,
    kind: Kind,
    reason: str,
    file_ids: Sequence[int] = (),
    case: str | None = None,
    on_behalf: OnBehalf | None = None,
) -> AccessRequest:
    """A pending request by ``stamp.actor`` (for ``on_behalf`` when given) with the steps
    its kind needs today."""
    if not reason.strip():
        raise UsageError("say why you need the footage (--reason): the register keeps it")
    rows = _covered_rows(session, file_ids=file_ids, case=case)
    restricted = any(r.access_class == RESTRICTED for r in rows)
    steps = policy.steps_for(kind, restricted=restricted, on_behalf=on_behalf is not None)
    req = AccessRequest(
        kind=kind,
        case_number=case or None,
        file_ids=json.dumps(sorted(set(file_ids))) if file_ids else None,
        reason=reason.strip(),
        restricted=restricted,
        steps=json.dumps([list(s) for s in steps]),
        station=stamp.station,
        requested_by=stamp.actor,
        requested_at=stamp.at,
        status=PENDING,
        on_behalf_kind=on_behalf.kind if on_behalf else None,
        on_behalf_name=on_behalf.name.strip() if on_behalf else None,
        on_behalf_ref=on_behalf.reference.strip() if on_behalf else None,
    )
    session.add(req)
    session.flush()
    details = {
        "kind": kind,
        "case": req.case_number,
        "files": list(files_of(req)),
        "reason": req.reason,
        "restricted": restricted,
        "steps": [list(s) for s in steps],
    }
    if on_behalf is not None:
        details["on_behalf"] = on_behalf.describe()
    _audit(session, stamp, "access.request", req, details)
    return req


# ----------------------------------------------------------------------------- decide


def _matching(steps: Steps, approvers: Sequence[frozenset[str]]) -> int:
    """How many steps distinct approvers can fill at once (each approver fills one step
    with one of their roles): a maximum bipartite matching, by augmenting paths."""
    owner: dict[int, int] = {}  # step -> approver

    def place(a: int, seen: set[int]) -> bool:
        for s, step in enumerate(steps):
            if s in seen or not approvers[a] & set(step):
                continue
            seen.add(s)
            if s not in owner or place(owner[s], seen):
                owner[s] = a
                return True
        return False

    return sum(place(a, set()) for a in range(len(approvers)))


def decisions_of(session: Session, req: AccessRequest) -> list[AccessDecision]:
    q = select(AccessDecision).where(AccessDecision.request_id == req.id)
    return list(session.scalars(q.order_by(AccessDecision.id)))


def _approvers(decisions: Sequence[AccessDecision]) -> list[frozenset[str]]:
    return [frozenset(json.loads(d.roles)) for d in decisions if d.decision == APPROVE]


def missing_steps(req: AccessRequest, decisions: Sequence[AccessDecision]) -> list[tuple[str, ...]]:
    """The steps still without an approval (one way of filling them, for messages)."""
    steps = steps_of(req)
    approvers = _approvers(decisions)
    missing = []
    for s in range(len(steps)):
        rest = steps[:s] + steps[s + 1 :]
        if _matching(rest, approvers) == _matching(steps, approvers):
            missing.append(steps[s])  # dropping it loses nothing: nobody fills it
        if len(missing) == len(steps) - _matching(steps, approvers):
            break
    return missing


def _open(session: Session, request_id: int) -> AccessRequest:
    req = session.get(AccessRequest, request_id)
    if req is None:
        raise NotFound(f"no access request {request_id}; `sudo dockd access history` lists them")
    if req.status == DENIED:
        raise UsageError(f"access request {req.id} was denied and is closed; ask again")
    if req.status == GRANTED:
        raise UsageError(f"access request {req.id} is already granted (until {req.expires_at})")
    return req


def _needs(missing: Sequence[tuple[str, ...]]) -> str:
    return "; ".join(" or ".join(step) for step in missing) or "nothing"


def approve(
    session: Session, stamp: Stamp, actor: Actor, policy: AccessConfig, request_id: int,
    *, reason: str | None = None,
) -> AccessRequest:  # fmt: skip
    """``actor`` approves one step of the request; the last step makes it a grant."""
    req = _open(session, request_id)
    if actor.login == req.requested_by:
        raise NotPermitted(
            f"{actor.login} asked for access request {req.id} and cannot approve it; "
            "someone else with the role it needs must"
        )
    decisions = decisions_of(session, req)
    if any(d.decided_by == actor.login for d in decisions):
        raise NotPermitted(
            f"{actor.login} has already approved access request {req.id}; each step needs "
            f"a different person: it still needs {_needs(missing_steps(req, decisions))}"
        )
    steps = steps_of(req)
    named = {role for step in steps for role in step}
    held = frozenset(r.value for r in actor.roles) & named
    approvers = _approvers(decisions)
    before = _matching(steps, approvers)
    if _matching(steps, [*approvers, held]) <= before:
        roles = ", ".join(sorted(actor.roles)) or "no role"
        raise NotPermitted(
            f"access request {req.id} still needs {_needs(missing_steps(req, decisions))}; "
            f"{actor.login} has {roles}, which fills none of those steps"
        )
    decision = AccessDecision(
        request_id=req.id,
        decision=APPROVE,
        decided_by=actor.login,
        roles=json.dumps(sorted(held)),
        reason=reason,
        at=stamp.at,
    )
    session.add(decision)
    session.flush()
    decisions.append(decision)
    _audit(session, stamp, "access.approve", req, {"roles": sorted(held), "reason": reason})
    if _matching(steps, _approvers(decisions)) == len(steps):
        req.status = GRANTED
        req.decided_at = stamp.at
        req.expires_at = stamp.at + timedelta(hours=policy.hours_for(parse_kind(req.kind)))
        session.flush()
        approved_by = [d.decided_by for d in decisions if d.decision == APPROVE]
        details = {
            "holder": req.requested_by,
            "kind": req.kind,
            "case": req.case_number,
            "files": list(files_of(req)),
            "approved_by": approved_by,
            "expires_at": req.expires_at.isoformat(),
        }
        _audit(session, stamp, "access.grant", req, details)
    return req


def deny(
    session: Session, stamp: Stamp, actor: Actor, request_id: int, *, reason: str
) -> AccessRequest:
    """A person whose role the request's rule names refuses it: the request is closed."""
    req = _open(session, request_id)
    if not reason.strip():
        raise UsageError(f"say why access request {req.id} is denied (--reason)")
    named = {role for step in steps_of(req) for role in step}
    held = frozenset(r.value for r in actor.roles) & named
    if not held and actor.login != req.requested_by:
        raise NotPermitted(
            f"access request {req.id} is decided by {', '.join(sorted(named))}; "
            f"{actor.login} has {', '.join(sorted(actor.roles)) or 'no role'}"
        )
    session.add(
        AccessDecision(
            request_id=req.id,
            decision=DENY,
            decided_by=actor.login,
            roles=json.dumps(sorted(held)),
            reason=reason,
            at=stamp.at,
        )
    )
    req.status = DENIED
    req.decided_at = stamp.at
    session.flush()
    _audit(session, stamp, "access.deny", req, {"roles": sorted(held), "reason": reason})
    return req


# ----------------------------------------------------------------------------- lists


def pending_for(session: Session, actor: Actor) -> list[AccessRequest]:
    """Pending requests ``actor`` could approve now: not their own, not yet decided by
    them, with a step still open that one of their roles fills."""
    mine = frozenset(r.value for r in actor.roles)
    out = []
    q = select(AccessRequest).where(AccessRequest.status == PENDING).order_by(AccessRequest.id)
    for req in session.scalars(q):
        if req.requested_by == actor.login:
            continue
        decisions = decisions_of(session, req)
        if any(d.decided_by == actor.login for d in decisions):
            continue
        steps = steps_of(req)
        approvers = _approvers(decisions)
        if _matching(steps, [*approvers, mine]) > _matching(steps, approvers):
            out.append(req)
    return out


def active_grants(session: Session, now: datetime) -> list[AccessRequest]:
    q = select(AccessRequest).where(AccessRequest.status == GRANTED, AccessRequest.expires_at > now)
    return list(session.scalars(q.order_by(AccessRequest.id)))


def all_requests(session: Session) -> list[AccessRequest]:
    return list(session.scalars(select(AccessRequest).order_by(AccessRequest.id)))


# ----------------------------------------------------------------------------- use


@dataclass(frozen=True)
class Grant:
    """An active grant as the access register names it."""

    id: int
    holder: str
    kind: str
    reason: str
    approved_by: tuple[str, ...]
    restricted: bool
    expires_at: datetime
    on_behalf: OnBehalf | None = None


class GrantExpired(NotPermitted):
    """The only grant that would cover the access has expired (audited, then refused)."""

    def __init__(self, message: str, request_id: int) -> None:
        super().__init__(message)
        self.request_id = request_id


def _covers(req: AccessRequest, row: Recording) -> bool:
    if req.case_number is not None:
        return row.case_number == req.case_number
    return row.id in files_of(req)


def find_grant(
    session: Session,
    actor: Actor,
    kinds: Sequence[Kind],
    rows: Sequence[Recording],
    now: datetime,
    *,
    case: str | None = None,
) -> Grant:
    """The active grant of ``actor`` of one of ``kinds`` covering every row; refused
    (naming the command that asks for one) when there is none, :class:`GrantExpired`
    when the only one expired. A case grant covers restricted files of the case only if
    the request saw them restricted."""
    q = select(AccessRequest).where(
        AccessRequest.requested_by == actor.login,
        AccessRequest.status == GRANTED,
        AccessRequest.kind.in_(kinds),
    )
    covering = [
        req
        for req in session.scalars(q.order_by(AccessRequest.expires_at.desc()))
        if all(_covers(req, r) for r in rows)
        and (req.restricted or all(r.access_class != RESTRICTED for r in rows))
    ]
    ids = [r.id for r in rows]
    ask = request_command(kinds[0], file_ids=ids, case=case)
    what = f"case {case}" if case else "file " + ", ".join(map(str, ids))
    active = [r for r in covering if r.expires_at is not None and r.expires_at > now]
    if active:
        req = active[0]
        decisions = decisions_of(session, req)
        assert req.expires_at is not None
        return Grant(
            id=req.id,
            holder=req.requested_by,
            kind=req.kind,
            reason=req.reason,
            approved_by=tuple(d.decided_by for d in decisions if d.decision == APPROVE),
            restricted=req.restricted,
            expires_at=req.expires_at,
            on_behalf=on_behalf_of(req),
        )
    if covering:
        req = covering[0]
        raise GrantExpired(
            f"{actor.login}'s {req.kind} grant {req.id} for {what} expired at "
            f"{req.expires_at:%Y-%m-%d %H:%M} UTC; ask again with: {ask}",
            req.id,
        )
    raise NotPermitted(
        f"{actor.login} holds no active {' or '.join(kinds)} grant for {what}; "
        f"ask for one with: {ask} (the approvers then see it in `sudo dockd access pending`)"
    )


def record_expired(session: Session, stamp: Stamp, refused: GrantExpired, use: str) -> None:
    """Audit a use refused because its grant expired (in its own transaction)."""
    req = session.get_one(AccessRequest, refused.request_id)
    _audit(session, stamp, "access.expired", req, {"use": use, "expires_at": str(req.expires_at)})
