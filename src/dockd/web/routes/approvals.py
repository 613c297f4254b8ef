"""``/approvals``: the requests the signed-in person may decide, approve or deny with a reason.

The queue is ``dockd access pending`` (:func:`dockd.auth.access.pending_for`); a decision
is ``dockd access approve|deny`` (:func:`dockd.auth.access.approve` / ``deny``) with the
signed-in account as the actor, so the same rules refuse the same things: one's own
request, a role no open step needs, a second approval by the same person. A refusal
re-shows the queue with status 403 and ``#approval-error`` saying why.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from dockd.auth import access as grants
from dockd.auth.permissions import allowed
from dockd.auth.roles import Actor
from dockd.errors import DockdError, NotFound, NotPermitted
from dockd.ledger.models import AccessRequest
from dockd.web.deps import Checked, Signed, require, stamp, state_of
from dockd.web.render import page

router = APIRouter()
Pending = Annotated[Signed, Depends(require("access pending"))]


def _row(s: Session, req: AccessRequest) -> dict[str, Any]:
    decisions = grants.decisions_of(s, req)
    return {
        "req": req,
        "what": grants.describe_target(req),
        "steps": " + ".join(" or ".join(step) for step in grants.steps_of(req)),
        "decided": [
            (d.decision, d.decided_by, ", ".join(json.loads(d.roles)) or "-", d.reason)
            for d in decisions
        ],
        "needs": "; ".join(" or ".join(st) for st in grants.missing_steps(req, decisions)),
    }


def _queue(request: Request, actor: Actor) -> list[dict[str, Any]]:
    with state_of(request).ledger.read() as s:
        return [_row(s, req) for req in grants.pending_for(s, actor)]


def _show(
    request: Request, signed: Signed, *, error: str | None = None, done: str | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    return page(
        request,
        "approvals.html",
        status_code=status,
        pending=_queue(request, signed.actor),
        error=error,
        done=done,
    )


def _decided(request: Request, actor: Actor) -> str | None:
    """What became of the request the actor just decided (``?decided=ID``), from the
    ledger: the page never repeats text from its address."""
    value = request.query_params.get("decided", "")
    if not value.isdigit():
        return None
    with state_of(request).ledger.read() as s:
        req = s.get(AccessRequest, int(value))
        if req is None or not any(d.decided_by == actor.login for d in grants.decisions_of(s, req)):
            return None
        if req.status == grants.PENDING:
            needs = grants.missing_steps(req, grants.decisions_of(s, req))
            still = "; ".join(" or ".join(step) for step in needs)
            return f"approved; access request {req.id} still needs {still}"
        if req.status == grants.GRANTED:
            return f"access request {req.id} is granted to {req.requested_by}"
        return f"access request {req.id} is denied and closed"


@router.get("/approvals")
def approvals(request: Request, signed: Pending) -> Response:
    return _show(request, signed, done=_decided(request, signed.actor))


def _decide(request: Request, signed: Signed, request_id: int, verb: str, reason: str) -> Response:
    actor = signed.actor
    action = f"access {verb}"
    if not allowed(actor, action):
        error = f"{actor.login} may not {verb} access requests: `dockd {action}` needs a role"
        return _show(request, signed, error=error, status=403)
    web = state_of(request)
    note = reason.strip() or None
    try:
        with web.ledger.session() as s:
            if verb == "approve":
                req = grants.approve(
                    s, stamp(request, actor), actor, web.config.access, request_id, reason=note
                )
            else:
                req = grants.deny(s, stamp(request, actor), actor, request_id, reason=reason)
            decided = req.id
    except NotFound as exc:
        return _show(request, signed, error=str(exc), status=404)
    except NotPermitted as exc:
        return _show(request, signed, error=str(exc), status=403)
    except DockdError as exc:  # already decided, no reason for a denial
        return _show(request, signed, error=str(exc), status=400)
    return RedirectResponse(f"/approvals?decided={decided}", status_code=303)


@router.post("/approvals/{request_id}/approve")
def approve(
    request: Request, request_id: int, signed: Checked, reason: Annotated[str, Form()] = ""
) -> Response:
    return _decide(request, signed, request_id, "approve", reason)


@router.post("/approvals/{request_id}/deny")
def deny(
    request: Request, request_id: int, signed: Checked, reason: Annotated[str, Form()] = ""
) -> Response:
    return _decide(request, signed, request_id, "deny", reason)
