"""The web view in tests: accounts that log in with a password, a client for
:func:`dockd.web.app.create_app` over HTTPS (the session cookie is Secure), and the
CSRF token of a page.

The client is Starlette's TestClient: the real app, its middleware and routes, in
process; ``dockd web`` as a real server is what the browser tests drive.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from dockd.auth import accounts
from dockd.auth.passwords import hash_password
from dockd.auth.roles import Role
from dockd.clock import Clock
from dockd.config import Config
from dockd.ledger.db import Ledger
from dockd.web.app import create_app

PASSWORD = "correct horse battery staple"  # noqa: S105 (the test accounts' password)
BASE_URL = "https://testserver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def add_person(
    ledger: Ledger, login: str, *roles: Role | str, password: str = PASSWORD, name: str = ""
) -> None:
    """An account with ``roles`` that logs in to the web view with ``password``."""
    stamp = accounts.Stamp(datetime.now(UTC), "st-test", "system")
    with ledger.session() as s:
        accounts.add_account(
            s,
            stamp,
            login=login,
            name=name or login.title(),
            roles=tuple(Role(r) for r in roles),
            password_hash=hash_password(password),
        )


def client(config: Config, ledger: Ledger, clock: Clock) -> TestClient:
    """A browser without a session, on the app made for ``config`` and ``ledger``."""
    return TestClient(create_app(config, ledger, clock=clock), base_url=BASE_URL)


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no csrf_token field"
    return found.group(1)


def log_in(browser: TestClient, login: str, password: str = PASSWORD, **extra: str) -> int:
    """Fill and post the login form; returns the status (303 when signed in)."""
    form = browser.get("/login")
    data = {"username": login, "password": password, "csrf_token": csrf_of(form.text), **extra}
    answer = browser.post("/login", data=data, follow_redirects=False)
    return int(answer.status_code)
