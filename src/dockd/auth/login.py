"""Logging in to the web view (issue 13): the one place a typed login and password
become an :class:`Actor`.

An account logs in with its argon2id password (``dockd users add --password-stdin``)
or, when it has a directory DN (``--ldap-dn``, or ``--ldap`` to look it up), by
binding to the directory (``[directory]``); one that has both is let in by either.
A disabled account never logs in, nor does ``system`` (root acting without sudo is
no person at a browser). Every attempt is an audit event,
``account.login`` or ``account.login_failed``, with how the login was checked and,
for a failure, why; never the password.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from dockd.auth import directory
from dockd.auth.accounts import actor_of, find_account
from dockd.auth.passwords import spend_as_verify, verify_password
from dockd.auth.roles import SYSTEM_LOGIN, Actor
from dockd.clock import Clock, SystemClock
from dockd.config.model import Config
from dockd.ledger import audit
from dockd.ledger.models import Account

log = structlog.get_logger("dockd.auth")

# A login typed at a form is anything; the audit trail keeps its first 63 characters.
_SHOWN = 63
# Who makes a failed attempt is not known: the trail names nobody for it.
ANONYMOUS = "anonymous"


def _record(
    session: Session,
    config: Config,
    at: datetime,
    actor: str,
    action: str,
    login: str,
    details: dict[str, Any],
) -> None:
    audit.record_stamped(
        session, audit.Stamp(at, config.station.id, actor), action, "account", login, details
    )


def verify(
    session: Session, config: Config, login: str, password: str, *, clock: Clock | None = None
) -> Actor | None:
    """The account ``login`` if ``password`` is right for it, else None; audited either way.

    Runs in the caller's transaction (``ledger.session()``), so the audit event is
    committed with it.
    """
    at = (clock or SystemClock()).now()
    shown = login if len(login) <= _SHOWN else login[:_SHOWN] + "…"

    def failed(reason: str, method: str | None = None) -> None:
        if method is None:  # no hash was checked: take as long as if one had been
            spend_as_verify(password)
        log.info("account.login_failed", login=shown, reason=reason)
        details = {"reason": reason, "via": method}
        _record(session, config, at, ANONYMOUS, "account.login_failed", shown, details)

    account = find_account(session, login) if login != SYSTEM_LOGIN else None
    if account is None:
        failed("no such account" if login != SYSTEM_LOGIN else "the system account")
        return None
    if account.disabled_at is not None:
        failed("disabled")
        return None
    tried: list[str] = []
    if account.password_hash:
        tried.append("password")
        if password and verify_password(account, password):
            return _success(session, config, at, account, "password")
    if account.ldap_dn and config.directory.enabled:
        tried.append("directory")
        if directory.authenticate(config.directory, account, password):
            return _success(session, config, at, account, "directory")
    if not tried:
        failed("no password and no directory for this account")
    else:
        failed("wrong password" if password else "empty password", "+".join(tried))
    return None


def _success(
    session: Session, config: Config, at: datetime, account: Account, method: str
) -> Actor:
    log.info("account.login", login=account.login, via=method)
    login = account.login
    _record(session, config, at, login, "account.login", login, {"via": method})
    return actor_of(session, account)
