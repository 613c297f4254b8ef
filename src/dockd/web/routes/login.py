"""Login and logout (issue 13): the accounts of ``dockd users``, checked by
:func:`dockd.auth.login.verify` (argon2id password or the directory), which writes the
``account.login`` / ``account.login_failed`` audit events.

The login form's CSRF token is bound to a short-lived cookie (there is no session yet);
too many failed attempts for a login name or from an address are refused (429) before
the password is checked. Logging out forgets the session, so its cookie is worthless.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import structlog
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from dockd.auth.login import verify
from dockd.web.deps import Checked, Refused, client_address, state_of
from dockd.web.render import gettext_of, page
from dockd.web.sessions import PRELOGIN_COOKIE, SESSION_COOKIE, new_token

log = structlog.get_logger("dockd.web")
router = APIRouter()

PRELOGIN_MAX_AGE = 30 * 60


def safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/search"
    return target


def _form(
    request: Request,
    *,
    token: str,
    next_url: str,
    status_code: int = 200,
    error: str | None = None,
    username: str = "",
) -> Response:
    response = page(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=token,
        next_url=next_url,
        error=error,
        username=username,
    )
    response.set_cookie(
        PRELOGIN_COOKIE,
        token,
        max_age=PRELOGIN_MAX_AGE,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=state_of(request).config.web.cookie_secure,
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    web = state_of(request)
    if web.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    token = request.cookies.get(PRELOGIN_COOKIE) or new_token()
    return _form(request, token=token, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/search",
) -> Response:
    web = state_of(request)
    _ = gettext_of(request)
    bound = request.cookies.get(PRELOGIN_COOKIE) or ""
    if not csrf_token or not bound or not hmac.compare_digest(csrf_token, bound):
        raise Refused(403, "missing or wrong CSRF token: reload the login page and try again")
    target = safe_next(next)
    address = client_address(request)
    login_name = username.strip()
    if web.sessions.blocked(login_name, address):
        log.warning("web.login_rate_limited", login=login_name[:63], address=address)
        minutes = web.config.web.login_window_minutes
        error = _("Too many failed logins. Wait %(minutes)d minutes and try again.") % {
            "minutes": minutes
        }
        return _form(
            request, token=bound, next_url=target, status_code=429, error=error,
            username=login_name,
        )  # fmt: skip
    with web.ledger.session() as s:
        actor = verify(s, web.config, login_name, password, clock=web.clock)
    if actor is None:
        web.sessions.failed(login_name, address)
        error = _("Wrong login or password.")
        return _form(
            request, token=bound, next_url=target, status_code=401, error=error,
            username=login_name,
        )  # fmt: skip
    web.sessions.succeeded(login_name)
    web.sessions.close(request.cookies.get(SESSION_COOKIE))  # a new token at every login
    sess = web.sessions.open(actor.login)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        sess.token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=web.config.web.cookie_secure,
    )
    response.delete_cookie(PRELOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, signed: Checked) -> Response:
    web = state_of(request)
    web.sessions.close(signed.session.token)
    log.info("web.logout", login=signed.actor.login)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=web.config.web.cookie_secure,
    )
    return response
