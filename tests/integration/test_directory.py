"""Logging in against a real LDAP directory (issue 12): Debian's slapd, started for the run.

A right directory password logs in; a wrong one, an empty one (LDAP would take it for
an anonymous bind), an unknown login and a disabled account do not; a login with LDAP
filter or DN metacharacters matches itself or nobody, never another person; the
directory's certificate is checked against ``ca_file``. Every attempt is an audit
event without the password, and ``dockd audit verify`` holds afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from dockd.auth import accounts, directory, login
from dockd.auth.passwords import hash_password
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config, load_config
from dockd.ledger.db import Ledger, open_ledger
from dockd.ledger.models import Account, AuditEvent
from tests.helpers.ldapserver import (
    ALICE,
    BOB,
    PEOPLE,
    SERVICE_DN,
    DirectoryServer,
    running_directory,
    tool,
    unrelated_ca,
)
from tests.helpers.skips import need
from tests.helpers.station import NOW, write_config

LOCAL, DANA = "a local password", "dana's own password"  # argon2id, in the ledger


@pytest.fixture(scope="session")
def slapd() -> Iterator[DirectoryServer]:
    """One throw-away slapd for the whole run."""
    sbin = tuple(t for t in ("slapd", "slappasswd") if tool(t) is None)
    need(
        tools=(*sbin, "ldapadd", "ldapwhoami", "openssl"),
        why="a real LDAP directory (Debian packages slapd, ldap-utils)",
    )
    with running_directory() as server:
        yield server


def template_section(server: DirectoryServer) -> str:
    return f"""
[directory]
url = "{server.ldaps_url}"
ca_file = "{server.ca_file}"
bind_dn_template = "uid={{login}},{PEOPLE}"
timeout_s = 20
"""


def search_section(server: DirectoryServer) -> str:
    return f"""
[directory]
url = "{server.ldaps_url}"
ca_file = "{server.ca_file}"
search_base = "{PEOPLE}"
search_filter = "(&(objectClass=inetOrgPerson)(uid={{login}}))"
bind_dn = "{SERVICE_DN}"
bind_password_file = "{server.password_file}"
timeout_s = 20
"""


@pytest.fixture
def station(
    slapd: DirectoryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Config, Ledger]]:
    """The test station with [directory] binding by template, as a file dockd reads."""
    path = write_config(tmp_path, template_section(slapd))
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    config = load_config(path)
    led = open_ledger(config.ledger.url)
    yield config, led
    led.close()


def add(led: Ledger, login_: str, *, dn: str | None, password: str | None = None) -> None:
    stamp = accounts.Stamp(NOW, "st-test", "system")
    with led.session() as s:
        accounts.add_account(
            s,
            stamp,
            login=login_,
            name=login_.title(),
            roles=(Role.LEGAL,),
            password_hash=hash_password(password) if password else None,
            ldap_dn=dn,
        )


def attempt(config: Config, led: Ledger, login_: str, password: str) -> str | None:
    """The login the attempt is let in as, or None."""
    with led.session() as s:
        actor = login.verify(s, config, login_, password, clock=FixedClock(NOW))
        return actor.login if actor else None


def login_events(led: Ledger) -> list[tuple[str, str, str, dict[str, object]]]:
    with led.read() as s:
        rows = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action.like("account.login%"))
            .order_by(AuditEvent.id)
        )
        return [(e.action, e.actor, e.subject_id, json.loads(e.details)) for e in rows]


def test_the_directory_decides_who_logs_in(
    station: tuple[Config, Ledger], capsys: pytest.CaptureFixture[str]
) -> None:
    config, led = station
    add(led, "alice", dn=ALICE.dn)
    add(led, "bob", dn=BOB.dn)

    assert attempt(config, led, "alice", ALICE.password) == "alice"
    assert attempt(config, led, "alice", BOB.password) is None  # another's password
    assert attempt(config, led, "alice", ALICE.password + "x") is None
    assert attempt(config, led, "alice", "") is None  # an anonymous bind never counts
    assert attempt(config, led, "carol", ALICE.password) is None  # no such account
    assert attempt(config, led, "system", ALICE.password) is None
    assert attempt(config, led, "a*)(uid=*", ALICE.password) is None

    events = login_events(led)
    assert [(a, actor, who) for a, actor, who, _ in events] == [
        ("account.login", "alice", "alice"),
        ("account.login_failed", "anonymous", "alice"),
        ("account.login_failed", "anonymous", "alice"),
        ("account.login_failed", "anonymous", "alice"),
        ("account.login_failed", "anonymous", "carol"),
        ("account.login_failed", "anonymous", "system"),
        ("account.login_failed", "anonymous", "a*)(uid=*"),
    ]
    assert events[0][3] == {"via": "directory"}
    assert events[3][3] == {"reason": "empty password", "via": "directory"}
    assert events[4][3]["reason"] == "no such account"
    with led.read() as s:
        trail = " ".join(s.scalars(select(AuditEvent.details)))
    assert ALICE.password not in trail and BOB.password not in trail

    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert "audit trail OK" in capsys.readouterr().out


def test_a_disabled_account_never_logs_in(station: tuple[Config, Ledger]) -> None:
    config, led = station
    add(led, "alice", dn=ALICE.dn)
    with led.session() as s:
        accounts.disable_account(
            s, accounts.Stamp(NOW, "st-test", "system"), "alice", reason="left the unit"
        )
    assert attempt(config, led, "alice", ALICE.password) is None
    assert login_events(led)[-1][3] == {"reason": "disabled", "via": None}


@pytest.mark.parametrize(
    "typed",
    ["a*)(uid=*", "*", "alice)(uid=bob", "bob)(|(uid=*", "alice,ou=people", "alice\\2a"],
)
def test_metacharacters_in_a_login_match_nobody_else(
    slapd: DirectoryServer, tmp_path: Path, typed: str
) -> None:
    """Escaped in the template's DN (RFC 4514) and in the search filter (RFC 4515): the
    typed login names itself, which no one in the directory is."""
    for section in (template_section(slapd), search_section(slapd)):
        config = load_config(write_config(tmp_path, section)).directory
        for person in (ALICE, BOB):
            someone = SimpleNamespace(login=typed, ldap_dn=None)
            assert not directory.authenticate(config, someone, person.password), (typed, section)
        # The same configuration lets the real person in: the refusal is the escaping.
        alice = SimpleNamespace(login="alice", ldap_dn=None)
        assert directory.authenticate(config, alice, ALICE.password)


def test_users_add_ldap_finds_the_dn_by_search(
    slapd: DirectoryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, search_section(slapd))
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    assert main(["users", "add", "bob", "--name", "Bob", "--role", "legal", "--ldap"]) == 0
    assert main(["users", "add", "nobody", "--name", "No One", "--role", "legal", "--ldap"]) != 0
    config = load_config(path)
    led = open_ledger(config.ledger.url)
    try:
        with led.read() as s:
            dns = {a.login: a.ldap_dn for a in s.scalars(select(Account))}
        assert dns["bob"] == BOB.dn and "nobody" not in dns
        assert attempt(config, led, "bob", BOB.password) == "bob"
        assert attempt(config, led, "bob", ALICE.password) is None
    finally:
        led.close()


def test_a_password_or_the_directory_let_in_an_account_that_has_both(
    station: tuple[Config, Ledger],
) -> None:
    config, led = station
    add(led, "alice", dn=ALICE.dn, password=LOCAL)
    add(led, "dana", dn=None, password=DANA)
    assert attempt(config, led, "alice", LOCAL) == "alice"
    assert attempt(config, led, "alice", ALICE.password) == "alice"
    assert attempt(config, led, "dana", DANA) == "dana"
    assert attempt(config, led, "dana", "wrong password!") is None
    vias = [e[3].get("via") for e in login_events(led)]
    assert vias == ["password", "directory", "password", "password"]


def test_a_directory_whose_certificate_does_not_chain_to_ca_file_is_refused(
    slapd: DirectoryServer, tmp_path: Path
) -> None:
    section = template_section(slapd).replace(str(slapd.ca_file), str(unrelated_ca(tmp_path)))
    config = load_config(write_config(tmp_path, section)).directory
    alice = SimpleNamespace(login="alice", ldap_dn=None)
    assert not directory.authenticate(config, alice, ALICE.password)


def test_users_add_refuses_a_dn_that_is_none_and_ldap_without_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    base = ["users", "add", "li.na", "--name", "Li Na", "--role", "legal"]
    cases = [
        (["--ldap-dn", "Li Na"], "'Li Na' is not a distinguished name"),
        (["--ldap"], "[directory] has no url"),
        (["--ldap", "--ldap-dn", ALICE.dn], "not both"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) != 0
        assert message in capsys.readouterr().err
    assert main([*base, "--ldap-dn", ALICE.dn]) == 0


def test_starttls_on_ldap_url_checks_the_certificate_too(
    slapd: DirectoryServer, tmp_path: Path
) -> None:
    """ldap:// is upgraded with StartTLS before the password is sent, and the upgrade
    checks the certificate against ca_file as ldaps:// does."""
    section = template_section(slapd).replace(slapd.ldaps_url, slapd.ldap_url)
    config = load_config(write_config(tmp_path, section)).directory
    alice = SimpleNamespace(login="alice", ldap_dn=None)
    assert directory.authenticate(config, alice, ALICE.password)
    assert not directory.authenticate(config, alice, BOB.password)
    untrusted = config.model_copy(update={"ca_file": unrelated_ca(tmp_path)})
    assert not directory.authenticate(untrusted, alice, ALICE.password)
