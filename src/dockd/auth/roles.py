"""The roles an account may hold, and who is acting: an account with its roles.

The words are those the ledger's ``account_roles.role`` column holds and the
permission table (:mod:`dockd.auth.permissions`) names; docs/admin.md shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dockd.errors import UsageError

SYSTEM_LOGIN = "system"  # root without sudo: automation (seeded by migration 0007)


class Role(StrEnum):
    """What a person does at the station; an account holds one or more."""

    OFFICER = "officer"  # wears a recorder; may ask to see footage (under a grant)
    DEVICE_MANAGER = "device-manager"  # the registry of recorders and who holds them
    CUSTODIAN = "custodian"  # 保管人: keeps the footage, registers access, places holds
    LEGAL = "legal"  # 法制科: approves access, places and releases holds
    LEADER = "leader"  # 主管领导: approves access and release outside the unit
    AUDITOR = "auditor"  # reads reports, queries and the audit trail; changes nothing
    ADMIN = "admin"  # runs the station: accounts, configuration, ledger, sweeps


def parse_roles(words: list[str] | tuple[str, ...]) -> tuple[Role, ...]:
    """Roles from words, refusing an unknown word with the list of known ones."""
    out: list[Role] = []
    for word in words:
        try:
            role = Role(word)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise UsageError(f"{word!r} is not a role; the roles are: {known}") from None
        if role not in out:
            out.append(role)
    return tuple(out)


@dataclass(frozen=True)
class Actor:
    """Who is acting, as resolved from the OS (never typed): one active account."""

    id: int
    login: str
    name: str
    roles: frozenset[Role]
    os_uid: int | None = None

    @property
    def is_system(self) -> bool:
        return self.login == SYSTEM_LOGIN

    def describe(self) -> str:
        """``alice (Alice Li; legal, leader)``: for messages and ``dockd whoami``."""
        held = ", ".join(sorted(self.roles)) or "no role"
        return f"{self.login} ({self.name}; {held})"
