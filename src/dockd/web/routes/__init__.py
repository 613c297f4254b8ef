"""The web view's routers, one module per page group; ``ROUTERS`` is what the app mounts.

Login, search and a recording's page (with its thumbnail, playback and request form);
approvals; reports; exports; the station.
"""

from __future__ import annotations

from fastapi import APIRouter

from dockd.web.routes import approvals, exports, login, recording, reports, search, station

ROUTERS: tuple[APIRouter, ...] = (
    login.router,
    search.router,
    recording.router,
    approvals.router,
    reports.router,
    exports.router,
    station.router,
)
