"""Passwords for the web view (issue 11): argon2id through argon2-cffi, the only import of it.

Only the hash is kept (``accounts.password_hash``, PHC string ``$argon2id$...``) with
argon2-cffi's default parameters (RFC 9106 low-memory profile); a hash made with
older parameters still verifies, and :func:`needs_rehash` says when to renew it.
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from dockd.errors import UsageError

_HASHER = PasswordHasher()  # argon2id by default
MIN_LENGTH = 12


class HasPassword(Protocol):
    @property
    def password_hash(self) -> str | None: ...


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``; a short or empty one is refused."""
    if len(password) < MIN_LENGTH:
        raise UsageError(
            f"the password is {len(password)} characters long; use at least {MIN_LENGTH}"
        )
    return _HASHER.hash(password)


def verify_password(account: HasPassword, password: str) -> bool:
    """Does ``password`` match the account's hash? False for an account without one."""
    stored = account.password_hash
    if not stored:
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []  # made once, on first use


def spend_as_verify(password: str) -> None:
    """Spend what checking ``password`` against a hash costs, and nothing else: a login
    refused before any hash is checked (no such account, disabled, no password) then
    takes as long as a wrong password, so timing does not tell which logins exist."""
    if not _DUMMY:
        _DUMMY.append(_HASHER.hash("dockd: no account has this password"))
    with contextlib.suppress(VerificationError, InvalidHashError):
        _HASHER.verify(_DUMMY[0], password)


def needs_rehash(stored: str) -> bool:
    """The hash was made with other parameters than today's: hash again at next login."""
    return _HASHER.check_needs_rehash(stored)
