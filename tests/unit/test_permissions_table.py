"""One permission table: the one in docs/admin.md is the one in code, every command of
the CLI has a row, and a refusal names the role that is missing and who can grant it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer

from dockd.auth.permissions import PERMISSIONS, allowed, markdown_table, require
from dockd.auth.roles import Actor, Role
from dockd.cli import app
from dockd.errors import NotPermitted

ADMIN_MD = Path(__file__).resolve().parents[2] / "docs" / "admin.md"


def docs_table() -> dict[str, dict[str, str]]:
    """The permission table of docs/admin.md: command -> {role: cell}."""
    lines = ADMIN_MD.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| command | officer"))
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    table: dict[str, dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        command = cells[0].strip("`")
        assert command not in table, f"docs/admin.md names `{command}` twice"
        table[command] = dict(zip(header[1:], cells[1:], strict=True))
    return table


def code_table() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for command, rule in PERMISSIONS.items():
        out[command] = {
            r.value: ("grant" if rule.grant else "yes") if r in rule.roles else "" for r in Role
        }
    return out


def cli_commands() -> set[str]:
    def walk(cmd: Any, prefix: list[str]) -> set[str]:
        subs = getattr(cmd, "commands", None)
        if not subs:
            return {" ".join(prefix)}
        return set().union(*(walk(sub, [*prefix, name]) for name, sub in subs.items()))

    return walk(typer.main.get_command(app), [])


def actor(*roles: Role, login: str = "alice") -> Actor:
    return Actor(id=2, login=login, name="Alice Li", roles=frozenset(roles))


def test_the_docs_table_is_the_table_in_code() -> None:
    assert docs_table() == code_table(), (
        "docs/admin.md's permission table differs from dockd.auth.permissions; paste "
        "the output of `python -c 'from dockd.auth.permissions import markdown_table; "
        "print(markdown_table())'`"
    )
    assert markdown_table().splitlines()[0].startswith("| command | officer")


def test_every_command_has_a_row_and_every_row_is_a_command() -> None:
    commands = cli_commands()
    assert commands - PERMISSIONS.keys() == set(), "commands without a permission row"
    assert PERMISSIONS.keys() - commands == set(), "rows naming no command"


@pytest.mark.parametrize(
    ("action", "may", "may_not"),
    [
        ("devices add", {Role.DEVICE_MANAGER, Role.ADMIN}, {Role.CUSTODIAN, Role.AUDITOR}),
        ("assign set", {Role.DEVICE_MANAGER, Role.ADMIN}, {Role.OFFICER, Role.LEGAL}),
        ("hold add", {Role.LEGAL, Role.LEADER, Role.CUSTODIAN}, {Role.AUDITOR, Role.OFFICER}),
        ("hold release", {Role.LEGAL, Role.LEADER}, {Role.CUSTODIAN, Role.ADMIN}),
        ("report", {Role.AUDITOR, Role.LEGAL, Role.LEADER, Role.ADMIN}, {Role.OFFICER}),
        ("ledger query", {Role.AUDITOR, Role.CUSTODIAN}, {Role.OFFICER, Role.DEVICE_MANAGER}),
        ("audit verify", {Role.AUDITOR}, {Role.OFFICER}),
        ("users add", {Role.ADMIN}, {Role.AUDITOR, Role.LEADER}),
        ("users list", {Role.ADMIN, Role.AUDITOR}, {Role.LEGAL}),
        ("explain gap", {Role.OFFICER, Role.CUSTODIAN}, {Role.AUDITOR}),
        ("explain approve", {Role.LEGAL, Role.LEADER}, {Role.OFFICER, Role.ADMIN}),
        ("inspection record", {Role.LEADER, Role.LEGAL, Role.CUSTODIAN}, {Role.AUDITOR}),
        ("inspection list", {Role.AUDITOR, Role.LEADER}, {Role.OFFICER}),
    ],
)
def test_roles_follow_the_issue(action: str, may: set[Role], may_not: set[Role]) -> None:
    for role in may:
        assert allowed(actor(role), action), (action, role)
    for role in may_not:
        assert not allowed(actor(role), action), (action, role)


def test_the_auditor_reads_and_changes_nothing() -> None:
    auditors = {
        a
        for a, r in PERMISSIONS.items()
        if Role.AUDITOR in r.roles and not r.grant and not r.anyone
    }
    assert auditors == {
        "devices list",
        "devices history",
        "handover list",
        "officers list",
        "ledger query",
        "ledger sessions",
        "alerts list",
        "report",
        "cases list",
        "audit head",
        "audit verify",
        "audit history",
        "hold list",
        "sweep upcoming",
        "sweep report",
        "sweep runs",
        "explain list",
        "inspection list",
        "trash list",
        "quarantine list",
        "users list",
    }


def test_view_and_export_are_marked_as_needing_a_grant() -> None:
    assert {a for a, r in PERMISSIONS.items() if r.grant} == {"view", "export"}


def test_whoami_needs_only_an_account() -> None:
    require(actor(), "whoami")


def test_a_refusal_names_the_missing_roles_and_who_grants_them() -> None:
    with pytest.raises(NotPermitted) as caught:
        require(actor(Role.CUSTODIAN, login="carol"), "hold release")
    message = str(caught.value)
    assert "`dockd hold release` needs the role legal or leader" in message
    assert "carol has custodian" in message
    assert "sudo dockd users roles carol --add legal" in message
    assert caught.value.exit_code == 77


def test_an_account_without_roles_is_refused_saying_so() -> None:
    with pytest.raises(NotPermitted, match=r"needs the role admin; bob has no role"):
        require(actor(login="bob"), "users add")


def test_an_unknown_command_is_a_bug_not_a_default() -> None:
    with pytest.raises(KeyError, match="no row"):
        require(actor(Role.ADMIN), "format disk")


def test_role_words_are_the_ones_the_issue_names() -> None:
    assert [r.value for r in Role] == [
        "officer",
        "device-manager",
        "custodian",
        "legal",
        "leader",
        "auditor",
        "admin",
    ]
