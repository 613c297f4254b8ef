"""``/exports``: ask for an evidence export, follow one's requests, make and download the package.

Asking is ``dockd access request --kind export`` (or ``external``) with the signed-in
account as the requester; the approvers decide it at ``/approvals``. Once granted, the
requester makes the package with a POST (``/exports/ID/make``, CSRF-checked): what
``dockd export`` writes (a BagIt bag, registered under the grant), zipped and kept.
``GET /exports/ID/file`` only reads that zip: a GET never registers an export, so a
prefetch, a reload or a download manager's retries do not multiply the copies the
access register counts.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from dockd.auth import access as grants
from dockd.auth.permissions import allowed
from dockd.errors import NotFound, NotPermitted, UsageError
from dockd.web.deps import Checked, Refused, Signed, require, stamp, state_of
from dockd.web.render import page
from dockd.web.routes import export_data as data

router = APIRouter()
# Every role may export under a grant (the ``export`` row); asking is ``access request``.
Exporter = Annotated[Signed, Depends(require("export"))]
_IDS = re.compile(r"[\s,]+")


def _file_ids(text: str) -> list[int]:
    words = [w for w in _IDS.split(text.strip()) if w]
    bad = [w for w in words if not w.isdigit()]
    if bad:
        raise UsageError(f"{', '.join(bad)} is not a file id: give numbers, e.g. 12, 13")
    return [int(w) for w in words]


def _show(request: Request, signed: Signed, *, error: str | None = None, status: int = 200,
          made: int | None = None, packaged: int | None = None) -> Response:  # fmt: skip
    web = state_of(request)
    with web.ledger.read() as s:
        mine = data.my_requests(s, signed.actor, web.clock.now())
    if not any(m.req.id == made for m in mine):
        made = None  # only a request of one's own is named
    packages = {}
    for m in mine:
        if not m.makeable:  # its grant ended (or never was): no package stays behind
            data.discard_packages(web.config, m.req.id)
            continue
        kept = data.find_package(web.config, m.req.id)
        if kept is not None and kept.made_by == signed.actor.login:
            packages[m.req.id] = kept
    if packaged not in packages:
        packaged = None
    return page(
        request,
        "exports.html",
        status_code=status,
        mine=mine,
        error=error,
        made=made,
        packages=packages,
        packaged=packaged,
        may_ask=allowed(signed.actor, "access request"),
        kinds=data.EXPORT_KINDS,
    )


@router.get("/exports")
def exports(request: Request, signed: Exporter) -> Response:
    made = request.query_params.get("made", "")
    packaged = request.query_params.get("packaged", "")
    return _show(
        request,
        signed,
        made=int(made) if made.isdigit() else None,
        packaged=int(packaged) if packaged.isdigit() else None,
    )


@router.post("/exports/request")
def ask(
    request: Request,
    signed: Checked,
    reason: Annotated[str, Form(max_length=2000)] = "",
    case: Annotated[str, Form(max_length=200)] = "",
    files: Annotated[str, Form(max_length=2000)] = "",
    kind: Annotated[str, Form(max_length=16)] = "export",
) -> Response:
    actor = signed.actor
    if not allowed(actor, "access request"):
        raise Refused(403, f"{actor.login} may not ask for exports (`dockd access request`)")
    web = state_of(request)
    try:
        if kind not in data.EXPORT_KINDS:
            raise UsageError(f"{kind!r} is not an export kind: export or external")
        with web.ledger.session() as s:
            req = grants.request_access(
                s,
                stamp(request, actor),
                web.config.access,
                kind=grants.parse_kind(kind),
                reason=reason,
                file_ids=_file_ids(files),
                case=case.strip() or None,
            )
            number = req.id
    except (UsageError, NotFound) as exc:  # no reason, no such file or case
        return _show(request, signed, error=str(exc), status=400)
    return RedirectResponse(f"/exports?made={number}", status_code=303)


@router.post("/exports/{request_id}/withdraw")
def withdraw(
    request: Request,
    request_id: int,
    signed: Checked,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The requester closes their own pending request (``dockd access deny`` by them)."""
    actor = signed.actor
    if not allowed(actor, "access deny"):
        raise Refused(403, f"{actor.login} may not withdraw requests (`dockd access deny`)")
    web = state_of(request)
    try:
        with web.ledger.session() as s:
            data.own_request(s, actor, request_id)
            grants.deny(s, stamp(request, actor), actor, request_id, reason=reason)
    except UsageError as exc:  # no reason, or already decided
        return _show(request, signed, error=str(exc), status=400)
    return RedirectResponse("/exports", status_code=303)


@router.post("/exports/{request_id}/make")
def make(request: Request, request_id: int, signed: Checked) -> Response:
    """Make the package of the signed-in account's granted request: one export, registered
    under the grant (``dockd export``), its zip kept for :func:`download`."""
    actor = signed.actor
    if not allowed(actor, "export"):
        raise Refused(403, f"{actor.login} may not export (`dockd export`)")
    web = state_of(request)
    try:
        data.make_package(
            config=web.config,
            ledger=web.ledger,
            clock=web.clock,
            actor=actor,
            request_id=request_id,
        )
    except NotFound as exc:  # not hers, or no such request: the same answer
        return _show(request, signed, error=str(exc), status=404)
    except NotPermitted as exc:  # not granted, expired, or no grant covers the files
        return _show(request, signed, error=str(exc), status=403)
    return RedirectResponse(f"/exports?packaged={request_id}", status_code=303)


@router.api_route("/exports/{request_id}/file", methods=["GET", "HEAD"])
def download(request: Request, request_id: int, signed: Exporter) -> Response:
    """The package the signed-in account made, as it was made: only read, never made
    again, so a reload or a retry registers no second export. Each GET is audited as
    ``export.downloaded``; ranges and HEAD are answered as for any file."""
    web = state_of(request)
    actor = signed.actor
    with web.ledger.read() as s:
        req = data.own_request(s, actor, request_id)
        live = data.in_force(req, web.clock.now())
        state = req.status
    if not live:
        data.discard_packages(web.config, request_id)
        raise Refused(
            403,
            f"export request {request_id} is {state if state != 'granted' else 'expired'}: "
            "its package is no longer handed out",
        )
    kept = data.find_package(web.config, request_id)
    if kept is None or kept.made_by != actor.login:
        raise Refused(
            404,
            f"the package of export request {request_id} has not been made yet: make it "
            "first with the button on the exports page (/exports)",
        )
    if request.method == "GET":
        data.record_download(
            web.ledger, stamp(request, actor), kept, byte_range=request.headers.get("range")
        )
    return FileResponse(kept.zip_path, media_type="application/zip", filename=kept.name)
