"""Passwords for the web view (issue 11): argon2id through argon2-cffi, the only import of it.

Only the hash is kept (``accounts.password_hash``, PHC string ``$argon2id$...``) with
argon2-cffi's default parameters (RFC 9106 low-memory profile); a hash made with
older parameters still verifies, and :func:`needs_rehash` says when to renew it.
"""

from __future__ import annotations

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


def needs_rehash(stored: str) -> bool:
    """The hash was made with other parameters than today's: hash again at next login."""
    return _HASHER.check_needs_rehash(stored)
