"""What every page handler needs, as FastAPI dependencies: who is signed in, whether
they may, one ledger session per request, and the CSRF check of every form.

Refusals are exceptions the app turns into pages (:mod:`dockd.web.app`):
:class:`LoginRequired` becomes a 303 to ``/login``, :class:`Refused` an error page
with its status (403 for a missing role or CSRF token).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from dockd.auth.accounts import Stamp, actor_of, find_account
from dockd.auth.permissions import allowed, rule_of
from dockd.auth.roles import Actor, Role
from dockd.clock import Clock
from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.web.sessions import SESSION_COOKIE, SessionStore, WebSession


@dataclass(frozen=True)
class WebState:
    """What the app was made with (``create_app``), on ``app.state.web``."""

    config: Config
    ledger: Ledger
    clock: Clock
    sessions: SessionStore
    status_file: Path | None = None


@dataclass(frozen=True)
class Signed:
    """The signed-in account of a request, read from the ledger for this request (a
    disabled account or a removed role counts at once), and its session."""

    actor: Actor
    session: WebSession

    @property
    def csrf(self) -> str:
        return self.session.csrf


class LoginRequired(Exception):
    """Nobody is signed in (or the session ended): go to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Refused(Exception):
    """The request is refused with ``status`` and a message naming why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def state_of(request: Request) -> WebState:
    web = request.app.state.web
    assert isinstance(web, WebState)
    return web


def stamp(request: Request, actor: Actor) -> Stamp:
    """When, where and who, for a core function's audit event."""
    web = state_of(request)
    return Stamp(web.clock.now(), web.config.station.id, actor.login)


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def current(request: Request) -> Signed:
    """The signed-in account, or :class:`LoginRequired`."""
    web = state_of(request)
    token = request.cookies.get(SESSION_COOKIE)
    sess = web.sessions.get(token)
    if sess is None:
        # Back to the page after login; a form posted after the session ended cannot be
        # sent again (its token died with the session): back to the search instead.
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target if request.method == "GET" else "/search")
    with web.ledger.read() as s:
        account = find_account(s, sess.login)
        actor = actor_of(s, account) if account is not None else None
        disabled = account is None or account.disabled_at is not None
    if actor is None or disabled:
        web.sessions.close_login(sess.login)
        raise LoginRequired("/search")
    signed = Signed(actor, sess)
    request.state.signed = signed
    return signed


Current = Annotated[Signed, Depends(current)]


def peek(request: Request) -> Signed | None:
    """The signed-in account if there is one, else None (for error pages, which show
    the nav to a signed-in person and a login link to anyone else)."""
    signed = getattr(request.state, "signed", None)
    if isinstance(signed, Signed):
        return signed
    try:
        return current(request)
    except LoginRequired:
        return None


def require(action: str) -> Callable[[Request], Signed]:
    """A dependency: the signed-in account, refused (403) unless the permission table
    lets one of its roles run ``dockd ACTION`` (the same rule as the command line)."""
    rule_of(action)  # a typo in a route is found when the app is built

    def dependency(request: Request) -> Signed:
        signed = current(request)
        if not allowed(signed.actor, action):
            needed = sorted(rule_of(action).roles, key=list(Role).index)
            held = ", ".join(sorted(signed.actor.roles)) or "no role"
            raise Refused(
                403,
                f"this page needs the role {' or '.join(r.value for r in needed)}; "
                f"{signed.actor.login} has {held}",
            )
        return signed

    return dependency


def ledger_session(request: Request) -> Iterator[Session]:
    """A read-only snapshot of the ledger for one request (never blocks a dock's writes).

    Writes go through a core function inside ``state_of(request).ledger.session()``, in
    the handler, so they are committed before the answer is sent.
    """
    with state_of(request).ledger.read() as s:
        yield s


LedgerSession = Annotated[Session, Depends(ledger_session, scope="function")]


async def csrf_checked(request: Request) -> Signed:
    """A dependency of every POST: the signed-in account, once the form's ``csrf_token``
    matches the session's (else 403)."""
    signed = current(request)
    form = await request.form()
    token = form.get("csrf_token")
    if not isinstance(token, str) or not hmac.compare_digest(token, signed.csrf):
        raise Refused(403, "missing or wrong CSRF token: reload the page and try again")
    return signed


Checked = Annotated[Signed, Depends(csrf_checked)]
