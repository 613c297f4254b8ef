"""A refused web login costs one password-hash check whatever the reason: no such
account, a disabled one, one without a password, or a wrong password. Otherwise the
time an answer takes would tell which logins exist (issue 13's login)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dockd.auth import accounts, login, passwords
from dockd.auth.roles import Role
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.ledger.db import Ledger

NOW = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"  # noqa: S105 (a test account's)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes argon2 was asked to check against, in order."""
    seen: list[str] = []
    real = passwords._HASHER

    class Counted:
        def verify(self, stored: str, password: str) -> bool:
            seen.append(stored)
            return real.verify(stored, password)

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

    monkeypatch.setattr(passwords, "_HASHER", Counted())
    return seen


def attempt(config: Config, ledger: Ledger, who: str, password: str) -> str | None:
    with ledger.session() as s:
        actor = login.verify(s, config, who, password, clock=FixedClock(NOW))
        return actor.login if actor else None


def test_every_refusal_costs_one_hash_check(
    config: Config, ledger: Ledger, checks: list[str]
) -> None:
    stamp = accounts.Stamp(NOW, config.station.id, "system")
    with ledger.session() as s:
        for name, hashed in (("alice", True), ("nopass", False), ("gone", True)):
            accounts.add_account(
                s,
                stamp,
                login=name,
                name=name.title(),
                roles=(Role.LEGAL,),
                password_hash=passwords.hash_password(PASSWORD) if hashed else None,
            )
        accounts.disable_account(s, stamp, "gone", reason="left")
    checks.clear()

    for who, password in (
        ("alice", PASSWORD + "x"),  # wrong password: its own hash is checked
        ("nobody", PASSWORD),  # no such account
        ("gone", PASSWORD),  # disabled
        ("nopass", PASSWORD),  # no password, no directory
        ("system", PASSWORD),  # never at a browser
    ):
        before = len(checks)
        assert attempt(config, ledger, who, password) is None
        assert len(checks) == before + 1, who
    assert attempt(config, ledger, "alice", PASSWORD) == "alice"
