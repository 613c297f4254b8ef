"""The web view as an ASGI app: ``create_app(config, ledger)`` (issue 13).

Every response, a page, a static file, a redirect or an error, carries the same
security headers (:class:`SecurityHeaders`): a Content-Security-Policy that lets the
page load only this site's own scripts, styles, images and media (htmx is a static
file here; no inline script or style anywhere), no framing, no MIME sniffing, and
``Cache-Control: no-store`` on everything but ``/static/`` so footage facts do not
stay in a browser's cache. Refusals become pages: a 303 to ``/login``, or
``error.html`` with the status and why.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockd.clock import Clock, SystemClock
from dockd.config import Config
from dockd.errors import DockdError, NotFound, NotPermitted, UsageError
from dockd.ledger.db import Ledger
from dockd.web.deps import LoginRequired, Refused, WebState, peek
from dockd.web.render import make_env, page
from dockd.web.routes import ROUTERS
from dockd.web.sessions import SessionStore

log = structlog.get_logger("dockd.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)
ERROR_PAGE = (
    b"<!doctype html><title>dockd: error</title><p>The web view failed; the error is in "
    b"its log (journalctl -u dockd-web).</p>"
)


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, and a plain 500 page
    (with them) for an error no handler caught, logged with its traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                names = {b"cache-control"} if not static else set()
                names |= {name for name, _ in HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                headers.extend(HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("web.error", path=scope.get("path"))
            if started:
                raise
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")],
                }
            )
            await send({"type": "http.response.body", "body": ERROR_PAGE})


def _error(request: Request, status: int, message: str) -> Response:
    peek(request)
    return page(request, "error.html", status_code=status, status=status, message=message)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("hx-request"):  # htmx: send the whole page to the login
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={quote(exc.next_url, safe='')}", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return _error(request, exc.status, exc.message)

    @app.exception_handler(DockdError)
    async def _dockd(request: Request, exc: DockdError) -> Response:
        status = 400
        if isinstance(exc, NotPermitted):
            status = 403
        elif isinstance(exc, NotFound):
            status = 404
        elif not isinstance(exc, UsageError):
            status = 500
            log.error("web.dockd_error", path=request.url.path, error=str(exc))
        return _error(request, status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail) if exc.status_code != 404 else "no such page"
        response = _error(request, exc.status_code, message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        where = ", ".join(
            ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
            for err in exc.errors()
        )
        return _error(request, 400, f"the request is not valid: check {where or 'its fields'}")


def create_app(
    config: Config,
    ledger: Ledger,
    *,
    clock: Clock | None = None,
    status_file: Path | None = None,
) -> FastAPI:
    """The web view on ``ledger`` for ``config``'s station.

    ``clock`` is the time sessions, grants and audit events use (tests pass a
    :class:`~dockd.clock.FixedClock` to run an idle timeout); ``status_file`` is the
    daemon's dock status (``[dock] status_file`` by default) for the station page.
    """
    clock = clock or SystemClock()
    web_cfg = config.web
    sessions = SessionStore(
        clock,
        idle=timedelta(minutes=web_cfg.idle_timeout_minutes),
        attempts=web_cfg.login_attempts,
        window=timedelta(minutes=web_cfg.login_window_minutes),
    )
    app = FastAPI(
        title="dockd",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.web = WebState(config, ledger, clock, sessions, status_file)
    app.state.templates = make_env(config)
    static = resources.files("dockd.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    for router in ROUTERS:
        app.include_router(router)
    _install_handlers(app)

    @app.get("/", include_in_schema=False)
    def _root() -> Response:
        return RedirectResponse("/search", status_code=303)

    app.add_middleware(SecurityHeaders)
    return app


def app_from_environment() -> Any:  # pragma: no cover - for `uvicorn --factory` by hand
    """``uvicorn --factory dockd.web.app:app_from_environment``: the config of
    ``$DOCKD_CONFIG`` (``dockd web`` is the usual way)."""
    from dockd.config import load_config
    from dockd.ledger.db import open_ledger

    config = load_config(None)
    zone = (config.station.id, config.station.timezone)  # for the SQL views' local times
    ledger = open_ledger(config.ledger.url, group=config.ledger.group, station_zone=zone)
    return create_app(config, ledger)
