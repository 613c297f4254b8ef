"""``/station``: the docks now, recent alerts, the last sweeps, store and ledger health.

Each part is shown to whom its command is open (the permission rows of ``dockd
status``, ``alerts list``, ``sweep runs`` and ``health``); the page needs one of them.
``/station/docks`` is the docks' part alone, which the page polls with htmx every few
seconds (``dockd status`` rows: bay, state, device, officer, progress, outcome).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dockd.auth.permissions import allowed
from dockd.web.deps import Refused, Signed, current, require, state_of
from dockd.web.render import page
from dockd.web.routes import station_data as data

router = APIRouter()

#: The page's parts and the command whose permission row opens each.
PARTS = {"docks": "status", "alerts": "alerts list", "sweeps": "sweep runs", "health": "health"}
REFRESH_S = 3


def _status_file(request: Request) -> Path:
    web = state_of(request)
    return web.status_file or web.config.dock.status_file


def _docks(request: Request) -> dict[str, Any]:
    return {"docks": data.read_docks(_status_file(request)), "progress": data.progress}


@router.get("/station")
def station(request: Request) -> Response:
    signed: Signed = current(request)
    shown = {part for part, action in PARTS.items() if allowed(signed.actor, action)}
    if not shown:
        held = ", ".join(sorted(signed.actor.roles)) or "no role"
        raise Refused(
            403,
            f"the station page shows what `dockd status`, `alerts list`, `sweep runs` and "
            f"`health` show; {signed.actor.login} has {held}, which may run none of them",
        )
    web = state_of(request)
    ctx: dict[str, Any] = {"shown": shown, "refresh_s": REFRESH_S}
    docks = data.read_docks(_status_file(request))
    if "docks" in shown:
        ctx.update(docks=docks, progress=data.progress)
    with web.ledger.read() as s:
        if "alerts" in shown:
            ctx["alerts"] = data.recent_alerts(s, web.config)
        if "sweeps" in shown:
            ctx["sweeps"] = data.recent_sweeps(s, web.config)
    if "health" in shown:
        ctx["checks"] = data.health(web.config, web.ledger, web.clock.now())
    return page(request, "station.html", **ctx)


@router.get("/station/docks")
def docks(request: Request) -> Response:
    """The docks' table alone (htmx swaps it in place)."""
    require(PARTS["docks"])(request)
    return page(request, "station_docks.html", **_docks(request))
