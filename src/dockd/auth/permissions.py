"""Who may run what: one table, per command, of the roles that may run it (issue 12).

The keys are the commands as typed after ``dockd`` (``"hold release"``). The table in
docs/admin.md is this one (tests/unit/test_permissions_table.py compares them, and
:func:`markdown_table` writes it), and every command of the CLI has a row.

Following the regulations: the registry and the assignments belong to the device
managers (and admins); placing a hold to legal, the leader or the custodian; releasing
one to legal and the leader only; reports, queries and the audit trail to the auditor
and up (custodian, legal, leader, admin; the auditor changes nothing). Viewing and
exporting footage need a grant (an approved access request): the row says which roles
may use one; the grant itself is checked where the access is registered.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockd.auth.roles import Actor, Role
from dockd.errors import NotPermitted

ALL = frozenset(Role)
ADMIN = frozenset({Role.ADMIN})
REGISTRY = frozenset({Role.DEVICE_MANAGER, Role.ADMIN})
# "Auditor and up": who reads reports, queries and the audit trail.
READERS = frozenset({Role.AUDITOR, Role.CUSTODIAN, Role.LEGAL, Role.LEADER, Role.ADMIN})
PLACE_HOLD = frozenset({Role.LEGAL, Role.LEADER, Role.CUSTODIAN})
RELEASE_HOLD = frozenset({Role.LEGAL, Role.LEADER})
KEEPERS = frozenset({Role.CUSTODIAN, Role.ADMIN})  # the store's own chores
ACTORS = ALL - {Role.AUDITOR}  # everyone who may change something
OVERSEERS = frozenset({Role.CUSTODIAN, Role.LEGAL, Role.LEADER, Role.ADMIN})
# Who approves a written explanation (never their own), and who inspects the use of
# the recorders for the inspection register (supervisors).
APPROVE_EXPLANATION = frozenset({Role.LEGAL, Role.LEADER})
INSPECTORS = frozenset({Role.CUSTODIAN, Role.LEGAL, Role.LEADER})


@dataclass(frozen=True)
class Rule:
    """The roles that may run one command; ``grant``: only under an active grant;
    ``anyone``: every account, even one without a role (``dockd whoami``)."""

    roles: frozenset[Role]
    grant: bool = False
    anyone: bool = False


def _rule(*roles: frozenset[Role] | Role, grant: bool = False) -> Rule:
    held: set[Role] = set()
    for r in roles:
        held |= {r} if isinstance(r, Role) else r
    return Rule(frozenset(held), grant=grant)


PERMISSIONS: dict[str, Rule] = {
    "ingest": _rule(Role.CUSTODIAN, Role.DEVICE_MANAGER, Role.ADMIN),
    "run": _rule(ADMIN),
    "health": _rule(ADMIN, Role.DEVICE_MANAGER),
    "status": _rule(KEEPERS, Role.DEVICE_MANAGER),
    "devices add": _rule(REGISTRY),
    "devices list": _rule(REGISTRY, READERS),
    "devices retire": _rule(REGISTRY),
    "devices lost": _rule(REGISTRY),
    "devices custodian": _rule(REGISTRY),
    "devices service": _rule(REGISTRY),
    "devices dispose": _rule(REGISTRY),
    "devices history": _rule(REGISTRY, READERS),
    "officers add": _rule(REGISTRY),
    "officers list": _rule(REGISTRY, READERS),
    "assign set": _rule(REGISTRY),
    "assign end": _rule(REGISTRY),
    "config check": _rule(ADMIN),
    "config diff": _rule(ADMIN),
    "ledger query": _rule(READERS),
    "ledger sessions": _rule(READERS, Role.DEVICE_MANAGER),
    "ledger migrate": _rule(ADMIN),
    "ledger optimize": _rule(ADMIN),
    "ledger backup": _rule(ADMIN),
    "ledger restore": _rule(ADMIN),
    "ledger grant-readonly": _rule(ADMIN),
    "alerts list": _rule(READERS, Role.DEVICE_MANAGER),
    "alerts ack": _rule(KEEPERS, Role.DEVICE_MANAGER),
    "tag": _rule(Role.CUSTODIAN, Role.LEGAL, Role.LEADER),
    "report": _rule(READERS),
    "view": _rule(ALL, grant=True),
    "export": _rule(ALL, grant=True),
    # Anyone but the auditor (who changes nothing) may ask; the [access] rule
    # (dockd.auth.access) says whose approval counts, so these rows admit every role
    # a rule may name. Who holds and who gave grants: the keepers and the approvers.
    "access request": _rule(ACTORS),
    "access approve": _rule(ACTORS),
    "access deny": _rule(ACTORS),
    "access pending": _rule(ACTORS),
    "access grants": _rule(OVERSEERS),
    "access history": _rule(OVERSEERS),
    # Anyone who may change something writes an explanation (the officer whose
    # recording broke off, first of all); leader or legal approves another's.
    "explain gap": _rule(ACTORS),
    "explain non-recording": _rule(ACTORS),
    "explain approve": _rule(APPROVE_EXPLANATION),
    "explain list": _rule(READERS, Role.OFFICER),
    "inspection record": _rule(INSPECTORS),
    "inspection list": _rule(READERS),
    "cases import": _rule(KEEPERS),
    "cases list": _rule(READERS),
    "cases links": _rule(KEEPERS),
    "cases close": _rule(KEEPERS, Role.LEGAL, Role.LEADER),
    "cases reopen": _rule(KEEPERS, Role.LEGAL, Role.LEADER),
    "audit head": _rule(READERS),
    "audit verify": _rule(READERS),
    "audit history": _rule(READERS),
    "hold add": _rule(PLACE_HOLD),
    "hold release": _rule(RELEASE_HOLD),
    "hold list": _rule(READERS),
    "sweep retention": _rule(ADMIN),
    "sweep archive": _rule(ADMIN),
    "sweep fixity": _rule(ADMIN),
    "sweep daily": _rule(ADMIN),
    "sweep duties": _rule(ADMIN),
    "sweep upcoming": _rule(READERS),
    "sweep report": _rule(READERS),
    "sweep runs": _rule(READERS),
    "trash list": _rule(READERS),
    "trash restore": _rule(Role.CUSTODIAN, Role.LEGAL, Role.LEADER),
    "quarantine list": _rule(READERS, Role.DEVICE_MANAGER),
    "quarantine release": _rule(KEEPERS, Role.DEVICE_MANAGER),
    "recordings retime": _rule(KEEPERS),
    # R3: the device manager collects, the custodian (the archivist) receives.
    "handover make": _rule(KEEPERS, Role.DEVICE_MANAGER),
    "handover receive": _rule(KEEPERS),
    "handover list": _rule(READERS, Role.DEVICE_MANAGER),
    "users add": _rule(ADMIN),
    "users list": _rule(ADMIN, Role.AUDITOR),
    "users disable": _rule(ADMIN),
    "users roles": _rule(ADMIN),
    "whoami": Rule(ALL, anyone=True),
    # The web view's server (dockd-web.service, as root: the system account). Each page
    # is checked in the web view by the row of the command it stands for.
    "web": _rule(ADMIN),
}

GRANT_ROLES = "An admin grants a role with: `sudo dockd users roles {login} --add {role}`"


def rule_of(action: str) -> Rule:
    """The rule of one command; a command missing from the table is a bug, not a default."""
    try:
        return PERMISSIONS[action]
    except KeyError:
        raise KeyError(f"`dockd {action}` has no row in dockd.auth.permissions") from None


def allowed(actor: Actor, action: str) -> bool:
    rule = rule_of(action)
    return rule.anyone or bool(actor.roles & rule.roles)


def require(actor: Actor, action: str) -> None:
    """Refuse ``actor`` running ``dockd ACTION`` unless one of their roles may.

    The refusal (exit 77) names the roles that may, the ones the actor holds, and the
    command an admin runs to grant one. A ``grant`` command passes here for any role;
    its grant is checked by the access register.
    """
    if allowed(actor, action):
        return
    needed = sorted(rule_of(action).roles, key=list(Role).index)
    held = ", ".join(sorted(actor.roles)) or "no role"
    words = " or ".join(r.value for r in needed)
    raise NotPermitted(
        f"`dockd {action}` needs the role {words}; {actor.login} has {held}. "
        + GRANT_ROLES.format(login=actor.login, role=needed[0].value)
    )


def cell(rule: Rule, role: Role) -> str:
    """One cell of the docs' table: ``yes``, ``grant`` (under a grant) or empty."""
    if role not in rule.roles:
        return ""
    return "grant" if rule.grant else "yes"


def markdown_table() -> str:
    """The table as docs/admin.md shows it (one row per command, one column per role)."""
    head = ["command", *(r.value for r in Role)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for action, rule in PERMISSIONS.items():
        cells = [f"`{action}`", *(cell(rule, r) for r in Role)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
