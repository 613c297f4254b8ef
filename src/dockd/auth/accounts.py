"""Accounts in the ledger: add, list, disable, change roles; each change an audit event.

An account is the OS login a person runs ``sudo dockd`` from (``os_uid`` when the
station knows it), with one or more roles. Nothing is deleted: a disabled account
stays, so the audit trail's actors keep meaning someone.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dockd.auth.roles import SYSTEM_LOGIN, Actor, Role
from dockd.errors import NotFound, UsageError
from dockd.ledger import audit

# An account change's stamp: auth's callers (and the web view) import it from here.
from dockd.ledger.audit import Stamp as Stamp
from dockd.ledger.models import Account, AccountRole

# What useradd accepts by default (NAME_REGEX), so an account can be an OS login.
_WORDS = frozenset(r.value for r in Role)
LOGIN_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def _audit(
    session: Session, stamp: Stamp, action: str, login: str, details: dict[str, Any]
) -> None:
    audit.record_stamped(session, stamp, action, "account", login, details)


def roles_of(session: Session, account: Account) -> frozenset[Role]:
    rows = session.scalars(select(AccountRole.role).where(AccountRole.account_id == account.id))
    return frozenset(Role(r) for r in rows if r in _WORDS)


def actor_of(session: Session, account: Account) -> Actor:
    return Actor(
        id=account.id,
        login=account.login,
        name=account.name,
        roles=roles_of(session, account),
        os_uid=account.os_uid,
    )


def find_account(session: Session, login: str) -> Account | None:
    return session.scalar(select(Account).where(Account.login == login))


def account_by_login(session: Session, login: str) -> Account:
    acc = find_account(session, login)
    if acc is None:
        raise NotFound(f"no account {login!r}; `sudo dockd users list` shows the accounts")
    return acc


def account_by_uid(session: Session, uid: int) -> Account | None:
    return session.scalar(select(Account).where(Account.os_uid == uid))


def add_account(
    session: Session,
    stamp: Stamp,
    *,
    login: str,
    name: str,
    roles: tuple[Role, ...],
    os_uid: int | None = None,
    password_hash: str | None = None,
    ldap_dn: str | None = None,
) -> Account:
    """A new account with its roles; refused if the login or the OS uid is taken."""
    if not LOGIN_RE.match(login):
        raise UsageError(
            f"{login!r} cannot be a login: use the person's OS login "
            "(lower-case letters, digits, '_', '-', '.'; at most 32)"
        )
    if not roles:
        raise UsageError(f"give {login} at least one role (--role)")
    if find_account(session, login) is not None:
        raise UsageError(f"the account {login} exists; `sudo dockd users list` shows it")
    if os_uid is not None and (other := account_by_uid(session, os_uid)) is not None:
        raise UsageError(f"uid {os_uid} is already the account {other.login}'s")
    acc = Account(
        login=login,
        name=name,
        os_uid=os_uid,
        password_hash=password_hash,
        ldap_dn=ldap_dn,
        created_at=stamp.at,
        created_by=stamp.actor,
    )
    session.add(acc)
    session.flush()
    for role in roles:
        session.add(AccountRole(account_id=acc.id, role=role.value))
    session.flush()
    details = {
        "name": name,
        "os_uid": os_uid,
        "roles": sorted(r.value for r in roles),
        "password": password_hash is not None,  # never the hash itself
        "ldap_dn": ldap_dn,
    }
    _audit(session, stamp, "account.add", login, details)
    return acc


def list_accounts(session: Session) -> list[tuple[Account, frozenset[Role]]]:
    accounts = session.scalars(select(Account).order_by(Account.login))
    return [(a, roles_of(session, a)) for a in accounts]


def disable_account(session: Session, stamp: Stamp, login: str, *, reason: str) -> Account:
    """Disable ``login``: it can no longer act; the row and its history stay."""
    acc = account_by_login(session, login)
    if acc.login == SYSTEM_LOGIN:
        raise UsageError(
            "the system account is root acting without sudo and cannot be disabled; "
            "control who may become root instead"
        )
    if acc.disabled_at is not None:
        raise UsageError(f"the account {login} was already disabled on {acc.disabled_at:%Y-%m-%d}")
    if not reason.strip():
        raise UsageError(f"say why {login} is disabled (--reason)")
    acc.disabled_at = stamp.at
    acc.disabled_reason = reason
    session.flush()
    _audit(session, stamp, "account.disable", login, {"reason": reason})
    return acc


def change_roles(
    session: Session,
    stamp: Stamp,
    login: str,
    *,
    add: tuple[Role, ...] = (),
    remove: tuple[Role, ...] = (),
) -> frozenset[Role]:
    """Add and remove roles of ``login``; returns the roles it holds afterwards."""
    acc = account_by_login(session, login)
    if not add and not remove:
        raise UsageError(f"say which roles {login} gains (--add) or loses (--remove)")
    if set(add) & set(remove):
        both = ", ".join(sorted(set(add) & set(remove)))
        raise UsageError(f"{both}: given to both --add and --remove")
    if acc.login == SYSTEM_LOGIN and Role.ADMIN in remove:
        raise UsageError("the system account (root without sudo) keeps the role admin")
    before = roles_of(session, acc)
    for role in add:
        if role not in before:
            session.add(AccountRole(account_id=acc.id, role=role.value))
    for role in remove:
        if role in before:
            row = session.get(AccountRole, (acc.id, role.value))
            if row is not None:
                session.delete(row)
    session.flush()
    after = roles_of(session, acc)
    if after == before:
        raise UsageError(f"{login} already has exactly {', '.join(sorted(before)) or 'no role'}")
    details = {
        "added": sorted(after - before),
        "removed": sorted(before - after),
        "roles": sorted(after),
    }
    _audit(session, stamp, "account.roles", login, details)
    return after
