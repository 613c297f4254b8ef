"""The web view's routers, one module per page group; ``ROUTERS`` is what the app mounts.

W1: login, search, recording; W3: approvals, reports, exports, station. A router
module that is not there yet is skipped, so the app runs while pages are added.
"""

from __future__ import annotations

from importlib import import_module

from fastapi import APIRouter

_MODULES = ("login", "search", "recording", "approvals", "reports", "exports", "station")


def _routers() -> tuple[APIRouter, ...]:
    out = []
    for name in _MODULES:
        try:
            module = import_module(f"dockd.web.routes.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dockd.web.routes.{name}":
                raise
            continue
        out.append(module.router)
    return tuple(out)


ROUTERS = _routers()
