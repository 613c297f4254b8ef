"""A recording's page, its thumbnail, its playback, and the form that asks for access.

The page is for those who may query the ledger (``dockd ledger query``'s row). Playback
is ``dockd view`` in a browser: the same permission row, the same grant
(:func:`dockd.auth.access.find_grant`) and the same register
(:func:`dockd.evidence.access.view`, a ``file.view`` event naming the grant). A play is
registered once: when the page shows the player it opens a play, and the first media
request of that play registers it; the range requests the video element makes after
that are served under the same grant, checked on each, without another row. Without a
grant the page offers the request form (``dockd access request --kind view``).

The thumbnail is one frame of the footage: for restricted footage it is shown only
under a grant, like playback.
"""

from __future__ import annotations

import mimetypes
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response

from dockd.auth import access as grants
from dockd.auth.permissions import allowed
from dockd.errors import NotFound
from dockd.evidence import access as core
from dockd.ingest.probe import thumbnail
from dockd.ledger.models import AccessRequest
from dockd.web import recording_view
from dockd.web.deps import (
    Checked,
    LedgerSession,
    Refused,
    Signed,
    require,
    stamp,
    state_of,
)
from dockd.web.recording_view import CLOCKS, hold_text, media_path
from dockd.web.render import page

log = structlog.get_logger("dockd.web")
router = APIRouter()

Reader = Annotated[Signed, Depends(require("ledger query"))]
Viewer = Annotated[Signed, Depends(require("view"))]

_THUMBS: OrderedDict[tuple[int, str], bytes | None] = OrderedDict()
_THUMBS_LOCK = threading.Lock()
_THUMBS_KEPT = 256


@router.get("/recordings/{file_id}")
def recording(
    request: Request, file_id: int, signed: Reader, s: LedgerSession, requested: int | None = None
) -> Response:
    web = state_of(request)
    view = recording_view.load(s, signed.actor, file_id, web.clock.now())
    can_play = view.playable and allowed(signed.actor, "view")
    if can_play:
        web.sessions.start_play(signed.session, file_id)  # its first media request registers
    status = None
    if requested is not None:
        req = s.get(AccessRequest, requested)
        if req is not None and req.requested_by == signed.actor.login:
            status = {"id": req.id, "steps": grants.steps_of(req)}
    return page(
        request,
        "recording.html",
        view=view,
        row=view.row,
        clocks=CLOCKS,
        hold_text=hold_text,
        can_play=can_play,
        can_request=allowed(signed.actor, "access request") and not can_play,
        show_thumbnail=not view.restricted or view.grant is not None,
        request_status=status,
    )


@router.post("/recordings/{file_id}/request")
def request_access(
    request: Request,
    file_id: int,
    signed: Checked,
    reason: Annotated[str, Form()] = "",
) -> Response:
    web = state_of(request)
    if not allowed(signed.actor, "access request"):
        login = signed.actor.login
        raise Refused(403, f"{login} may not ask for access (an auditor changes nothing)")
    with web.ledger.session() as s:
        recording_view.get_row(s, file_id)
        req = grants.request_access(
            s,
            stamp(request, signed.actor),
            web.config.access,
            kind="view",
            reason=reason,
            file_ids=[file_id],
        )
        number = req.id
    log.info("web.access_request", login=signed.actor.login, file=file_id, request=number)
    return RedirectResponse(f"/recordings/{file_id}?requested={number}", status_code=303)


@router.get("/recordings/{file_id}/thumbnail.jpg")
async def recording_thumbnail(request: Request, file_id: int, signed: Reader) -> Response:
    web = state_of(request)

    def locate() -> tuple[str, Path]:
        with web.ledger.read() as s:
            row = recording_view.get_row(s, file_id)
            if row.access_class == core.RESTRICTED:
                grant, why = recording_view.find_grant(s, signed.actor, row, web.clock.now())
                if grant is None:
                    raise Refused(403, why or "restricted footage is shown under a grant only")
            return row.blake3, media_path(web.config, row)

    blake3, path = await run_in_threadpool(locate)
    key = (file_id, blake3)
    with _THUMBS_LOCK:
        cached = _THUMBS.get(key, b"")
    if cached == b"":
        cached = await run_in_threadpool(thumbnail, path)
        with _THUMBS_LOCK:
            _THUMBS[key] = cached
            while len(_THUMBS) > _THUMBS_KEPT:
                _THUMBS.popitem(last=False)
    if cached is None:
        raise NotFound(f"recording {file_id} has no picture to show (no decodable video frame)")
    return Response(cached, media_type="image/jpeg")


@router.get("/recordings/{file_id}/media")
def recording_media(request: Request, file_id: int, signed: Viewer) -> Response:
    """The file, under the signed-in person's view grant; HTTP Range gives 206."""
    web = state_of(request)
    actor = signed.actor
    now = web.clock.now()
    with web.ledger.read() as s:
        rows = core.files_by_id(s, [file_id])
    access = core.under_grant(web.ledger, stamp(request, actor), actor, ("view",), rows)
    if web.sessions.claim_play(signed.session, file_id):
        try:
            with web.ledger.session() as s:
                row, event = core.view(s, file_id, access, at=now)
                path = media_path(web.config, row)
        except BaseException:
            web.sessions.unclaim_play(signed.session, file_id)
            raise
        log.info(
            "web.play", login=actor.login, file=file_id, grant=access.grant_id, audit_event=event.id
        )
    else:
        with web.ledger.read() as s:
            path = media_path(web.config, recording_view.get_row(s, file_id))
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, content_disposition_type="inline")
