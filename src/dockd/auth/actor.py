"""Who is acting: the account of the person who ran dockd, from the OS, never typed.

Staff run ``sudo dockd ...``: dockd runs as root and ``SUDO_UID`` names the person, so
the ledger stays writable by root alone while every change names its real author.
Root without sudo is the ``system`` account (automation: the daemon, cron, the first
``dockd users add``). Any other user is their own account, when they can read the
ledger at all. Only sudo's word is taken, and only when the process *is* root: a user
who sets ``SUDO_UID`` themselves is still themselves.
"""

from __future__ import annotations

import os
import pwd
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from dockd.auth import accounts
from dockd.auth.roles import SYSTEM_LOGIN, Actor
from dockd.errors import NotPermitted, UsageError
from dockd.ledger.models import Account


def login_of_uid(uid: int) -> str | None:
    """The OS login of ``uid`` (``None`` when the passwd database has no such user)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def uid_of_login(login: str) -> int | None:
    try:
        return pwd.getpwnam(login).pw_uid
    except KeyError:
        return None


def process_identity(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`resolve_actor` for this process."""
    env = os.environ if env is None else env
    raw = env.get("SUDO_UID")
    try:
        sudo_uid = int(raw) if raw else None
    except ValueError:
        raise UsageError(f"SUDO_UID={raw!r} is not a user id; run dockd through sudo") from None
    return {"uid": os.getuid(), "sudo_uid": sudo_uid, "env": env}


def add_command(login: str | None, uid: int) -> str:
    """The command an admin runs to give this person an account."""
    who = shlex.quote(login) if login else f"LOGIN --uid {uid}"
    return f"sudo dockd users add {who} --name 'FULL NAME' --role ROLE"


def unreadable_ledger(uid: int) -> NotPermitted:
    """The refusal for a user who ran dockd without sudo and cannot read the ledger:
    they cannot be looked up, so say both what they must do and what an admin would."""
    login = login_of_uid(uid)
    shown = f"{login} (uid {uid})" if login else f"uid {uid}"
    return NotPermitted(
        f"{shown} ran dockd without sudo and cannot open the ledger, which is root's; "
        "staff run `sudo dockd ...`. Without an account yet, an admin adds it with: "
        f"{add_command(login, uid)}"
    )


def resolve_actor(
    session: Session,
    *,
    uid: int,
    sudo_uid: int | None,
    env: Mapping[str, str],
    login_of: Callable[[int], str | None] = login_of_uid,
) -> Actor:
    """The active account acting in this process.

    ``uid`` is the process's real uid; ``sudo_uid`` is ``SUDO_UID`` (only believed when
    ``uid`` is 0); ``env`` gives ``SUDO_USER`` when the passwd database does not know
    ``sudo_uid``. The account is the one whose ``os_uid`` is the person's uid, else the
    one whose login is their OS login (and has no other uid). Refused, naming the
    command that would fix it: a person without an account, a disabled account.
    """
    if uid == 0 and not sudo_uid:
        account = accounts.find_account(session, SYSTEM_LOGIN)
        if account is None:
            raise NotPermitted(
                "the ledger has no system account (root acting without sudo); "
                "run `dockd ledger migrate`"
            )
        return _active(session, account)
    person = sudo_uid if uid == 0 and sudo_uid else uid
    login = login_of(person) or (env.get("SUDO_USER") if uid == 0 else None) or None
    account = accounts.account_by_uid(session, person)
    if account is None and login is not None and login != SYSTEM_LOGIN:
        by_name = accounts.find_account(session, login)
        if by_name is not None and by_name.os_uid not in (None, person):
            raise NotPermitted(
                f"the account {login} belongs to uid {by_name.os_uid}, but you are uid "
                f"{person}; an admin must check who this is before anything else"
            )
        account = by_name
    if account is None or account.login == SYSTEM_LOGIN:
        shown = login or f"uid {person}"
        raise NotPermitted(
            f"{shown} has no dockd account, so dockd cannot say who is acting; "
            f"an admin adds it with: {add_command(login, person)}"
        )
    return _active(session, account)


def _active(session: Session, account: Account) -> Actor:
    if account.disabled_at is not None:
        when = account.disabled_at.strftime("%Y-%m-%d %H:%M UTC")
        why = f": {account.disabled_reason}" if account.disabled_reason else ""
        raise NotPermitted(
            f"the account {account.login} was disabled on {when}{why}; "
            "ask an admin (`sudo dockd users list` shows the accounts)"
        )
    return accounts.actor_of(session, account)
