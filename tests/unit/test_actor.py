"""Who is acting, from the uids alone (no root needed): sudo's person, root's ``system``,
a plain user as themselves; the unknown and the disabled are refused, saying what to do.
Accounts and their changes are audit events; passwords are argon2id."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from dockd.auth import accounts
from dockd.auth.actor import resolve_actor
from dockd.auth.passwords import hash_password, verify_password
from dockd.auth.roles import Role
from dockd.errors import NotPermitted, UsageError
from dockd.ledger.audit import verify_chain
from dockd.ledger.db import Ledger
from dockd.ledger.models import Account, AuditEvent
from tests.helpers.ledgers import BACKENDS
from tests.helpers.station import NOW

PASSWD = {0: "root", 5001: "alice", 5002: "bob", 5003: "carol"}
STAMP = accounts.Stamp(at=NOW, station="st-test", actor="system")


def login_of(uid: int) -> str | None:
    return PASSWD.get(uid)


@pytest.fixture
def people(ledger: Ledger) -> Ledger:
    with ledger.session() as s:
        accounts.add_account(
            s, STAMP, login="alice", name="Alice Li", roles=(Role.LEGAL,), os_uid=5001
        )
        accounts.add_account(s, STAMP, login="carol", name="Carol Wu", roles=(Role.CUSTODIAN,))
    return ledger


def resolve(ledger: Ledger, uid: int, sudo_uid: int | None = None, **env: str) -> str:
    with ledger.read() as s:
        actor = resolve_actor(s, uid=uid, sudo_uid=sudo_uid, env=env, login_of=login_of)
    return actor.login


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_root_without_sudo_is_the_system_account_an_admin(people: Ledger) -> None:
    """Seeded by the migration on both ledgers; accounts added after it get their own ids."""
    with people.read() as s:
        actor = resolve_actor(s, uid=0, sudo_uid=None, env={}, login_of=login_of)
        alice = resolve_actor(s, uid=5001, sudo_uid=None, env={}, login_of=login_of)
    assert actor.login == "system" and actor.roles == {Role.ADMIN} and actor.is_system
    assert actor.os_uid == 0 and alice.id not in (actor.id, None)


def test_under_sudo_the_account_is_sudo_uids(people: Ledger) -> None:
    assert resolve(people, 0, 5001, SUDO_USER="alice") == "alice"
    # by OS login when the account has no uid yet
    assert resolve(people, 0, 5003) == "carol"


def test_sudo_is_believed_only_from_root(people: Ledger) -> None:
    """bob setting SUDO_UID=5001 himself is still bob, who has no account."""
    with pytest.raises(NotPermitted, match="bob has no dockd account"):
        resolve(people, 5002, 5001)


def test_a_plain_user_is_their_own_account(people: Ledger) -> None:
    assert resolve(people, 5001) == "alice"


def test_an_unknown_user_is_refused_with_the_command_that_adds_them(people: Ledger) -> None:
    with pytest.raises(NotPermitted) as caught:
        resolve(people, 0, 5002, SUDO_USER="bob")
    assert "sudo dockd users add bob --name 'FULL NAME' --role ROLE" in str(caught.value)
    assert caught.value.exit_code == 77
    with pytest.raises(NotPermitted, match=r"users add LOGIN --uid 7777 --name"):
        resolve(people, 7777)


def test_an_os_user_named_system_is_not_the_system_account(people: Ledger) -> None:
    PASSWD[6000] = "system"
    try:
        with pytest.raises(NotPermitted, match="system has no dockd account"):
            resolve(people, 0, 6000)
    finally:
        del PASSWD[6000]


def test_a_login_bound_to_another_uid_is_refused(people: Ledger) -> None:
    PASSWD[5999] = "alice"  # alice's login, another uid: not alice
    try:
        with pytest.raises(NotPermitted, match="belongs to uid 5001, but you are uid 5999"):
            resolve(people, 0, 5999)
    finally:
        del PASSWD[5999]


def test_a_disabled_account_is_refused_with_its_reason(people: Ledger) -> None:
    with people.session() as s:
        accounts.disable_account(s, STAMP, "alice", reason="moved to another unit")
    with pytest.raises(NotPermitted, match=r"alice was disabled on .*: moved to another unit"):
        resolve(people, 0, 5001)


def test_the_system_account_keeps_admin_and_cannot_be_disabled(people: Ledger) -> None:
    with people.session() as s, pytest.raises(UsageError, match="cannot be disabled"):
        accounts.disable_account(s, STAMP, "system", reason="x")
    with people.session() as s, pytest.raises(UsageError, match="keeps the role admin"):
        accounts.change_roles(s, STAMP, "system", remove=(Role.ADMIN,))


def test_adding_twice_or_a_taken_uid_or_no_role_is_refused(people: Ledger) -> None:
    with people.session() as s, pytest.raises(UsageError, match="the account alice exists"):
        accounts.add_account(s, STAMP, login="alice", name="A", roles=(Role.LEGAL,))
    with people.session() as s, pytest.raises(UsageError, match="uid 5001 is already"):
        accounts.add_account(s, STAMP, login="al", name="A", roles=(Role.LEGAL,), os_uid=5001)
    with people.session() as s, pytest.raises(UsageError, match="at least one role"):
        accounts.add_account(s, STAMP, login="dan", name="Dan", roles=())
    with people.session() as s, pytest.raises(UsageError, match="cannot be a login"):
        accounts.add_account(s, STAMP, login="Dan Smith", name="Dan", roles=(Role.LEGAL,))


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_every_change_is_an_audit_event_and_the_chain_holds(people: Ledger) -> None:
    later = accounts.Stamp(at=NOW + timedelta(minutes=5), station="st-test", actor="alice")
    with people.session() as s:
        after = accounts.change_roles(
            s, later, "carol", add=(Role.LEGAL,), remove=(Role.CUSTODIAN,)
        )
        accounts.disable_account(s, later, "carol", reason="left")
    assert after == {Role.LEGAL}
    with people.read() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        assert verify_chain(s).ok
    assert [(e.action, e.subject_id, e.actor) for e in events] == [
        ("account.add", "alice", "system"),
        ("account.add", "carol", "system"),
        ("account.roles", "carol", "alice"),
        ("account.disable", "carol", "alice"),
    ]
    assert '"added":["legal"]' in events[2].details
    assert '"removed":["custodian"]' in events[2].details


def test_a_password_is_kept_as_argon2id_and_verifies(ledger: Ledger) -> None:
    with ledger.session() as s:
        accounts.add_account(
            s,
            STAMP,
            login="web",
            name="Web User",
            roles=(Role.AUDITOR,),
            password_hash=hash_password("correct horse battery"),
        )
    with ledger.read() as s:
        acc = s.scalar(select(Account).where(Account.login == "web"))
        event = s.scalar(select(AuditEvent).where(AuditEvent.subject_id == "web"))
    assert acc is not None and event is not None
    assert acc.password_hash is not None and acc.password_hash.startswith("$argon2id$")
    assert verify_password(acc, "correct horse battery")
    assert not verify_password(acc, "correct horse batterY")
    assert "argon2" not in event.details  # the trail says a password was set, not which
    with pytest.raises(UsageError, match="at least 12"):
        hash_password("short")
