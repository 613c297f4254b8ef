"""Access requests and grants (issue 12): footage is seen or copied only under a grant
that the people the ``[access]`` rule names approved, each step audited.

dockd runs in-process as ``sudo dockd`` by one account would (tests/helpers/accounts.py:
the real resolution from ``SUDO_UID``); the last test does the same with real OS
accounts made by ``useradd`` and ``dockd`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import load_config, parse_config
from dockd.config.access import ROLE_WORDS, AccessConfig
from dockd.context import Context
from dockd.errors import ConfigError
from dockd.ingest.pipeline import run_ingest
from dockd.ledger.models import AccessRequest, AuditEvent
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, add_account
from tests.helpers.cli_station import DOCKD
from tests.helpers.ledgers import register
from tests.helpers.skips import need
from tests.helpers.station import write_config

CASE = "K-7"


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    return make_recorder(tmp_path_factory.mktemp("rec"), clips=2, extras=False)


@dataclass(frozen=True)
class People:
    """The station's staff, by uid: two officers, legal, two leaders, one person with
    both legal and leader, a custodian and an auditor."""

    officer: int
    other: int
    legal: int
    leader: int
    leader2: int
    both: int
    custodian: int
    auditor: int


@pytest.fixture
def people(ctx: Context) -> People:
    def add(login: str, *roles: str) -> int:
        return add_account(ctx.ledger, login, *roles)

    return People(
        officer=add("olga", "officer"),
        other=add("oscar", "officer"),
        legal=add("lena", "legal"),
        leader=add("leo", "leader"),
        leader2=add("lara", "leader"),
        both=add("bo", "legal", "leader"),
        custodian=add("cora", "custodian"),
        auditor=add("aude", "auditor"),
    )


@pytest.fixture
def ids(
    ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, people: People,
) -> list[int]:  # fmt: skip
    """Two ingested files, tagged with case K-7 by the custodian."""
    register(ctx.ledger, clock, rec)
    result = run_ingest(ctx, rec.root)
    monkeypatch.setenv("DOCKD_CONFIG", str(write_config(tmp_path)))
    files = [f.file_id for f in result.files if f.file_id is not None]
    act_as(monkeypatch, people.custodian)
    assert main(["tag", *map(str, files), "--case", CASE]) == 0
    return files


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(run_as: Run) -> Run:
    """``run(uid, *args)``: dockd as ``sudo dockd ARGS`` by ``uid``; (code, out, err)."""
    return run_as


def ask(run: Run, uid: int, *what: str, kind: str, reason: str = "complaint 41") -> int:
    code, out, err = run(uid, "access", "request", *what, "--kind", kind, "--reason", reason)
    assert code == 0, err
    return int(out.strip())  # the number alone on stdout: scripts read it


def request_row(ctx: Context, number: int) -> AccessRequest:
    with ctx.ledger.read() as s:
        return s.get_one(AccessRequest, number)


def uses(ctx: Context, action: str) -> list[AuditEvent]:
    with ctx.ledger.read() as s:
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(s.scalars(q))


def test_without_a_grant_nobody_views_or_exports_and_is_told_how_to_ask(
    ctx: Context, ids: list[int], people: People, run: Run, tmp_path: Path
) -> None:
    code, _, err = run(people.officer, "view", str(ids[0]))
    assert code == 77
    assert f"sudo dockd access request --file {ids[0]} --kind view --reason" in err
    code, _, err = run(people.leader, "export", "--case", CASE, "--to", str(tmp_path / "bag"))
    assert code == 77
    assert f"sudo dockd access request --case {CASE} --kind export --reason" in err
    assert not (tmp_path / "bag").exists()
    assert uses(ctx, "file.view") == uses(ctx, "file.export") == []


def test_a_requester_cannot_approve_their_own_request(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    number = ask(run, people.legal, "--file", str(ids[0]), kind="view")
    code, _, err = run(people.legal, "access", "approve", str(number))
    assert code == 77 and "cannot approve it" in err
    assert request_row(ctx, number).status == "pending"
    code, _, err = run(people.legal, "view", str(ids[0]))
    assert code == 77


def test_export_needs_legal_and_leader_from_two_people(
    ctx: Context, ids: list[int], people: People, run: Run, tmp_path: Path
) -> None:
    number = ask(run, people.officer, "--case", CASE, kind="export", reason="court 2026-17")
    code, out, _ = run(people.legal, "access", "approve", str(number))
    assert code == 0 and "still needs leader" in out
    code, _, err = run(people.legal, "access", "approve", str(number))  # once per person
    assert code == 77 and "already approved" in err
    bag = tmp_path / "bag"
    code, _, err = run(people.officer, "export", "--case", CASE, "--to", str(bag))
    assert code == 77 and not bag.exists()  # one approval is not enough
    code, out, _ = run(people.leader, "access", "approve", str(number), "--reason", "ok")
    assert code == 0 and "granted to olga" in out
    assert request_row(ctx, number).status == "granted"

    code, _, err = run(people.other, "export", "--case", CASE, "--to", str(bag))
    assert code == 77  # the grant is olga's alone
    code, out, err = run(people.officer, "export", "--case", CASE, "--to", str(bag))
    assert code == 0, err
    assert f"grant {number}" in out and (bag / "bagit.txt").is_file()
    assert f"Access-Grant: {number}" in (bag / "bag-info.txt").read_text(encoding="utf-8")
    events = uses(ctx, "file.export")
    assert sorted(int(e.subject_id) for e in events) == sorted(ids)
    for event in events:
        details = json.loads(event.details)
        assert event.actor == "olga" and details["by"] == "olga"
        assert details["grant"] == number
        assert details["approved_by"] == "lena, leo"
        assert details["reason"] == "court 2026-17"


def test_one_person_cannot_give_both_approvals_even_holding_both_roles(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    number = ask(run, people.officer, "--file", str(ids[0]), kind="export")
    assert run(people.both, "access", "approve", str(number))[0] == 0
    code, _, err = run(people.both, "access", "approve", str(number))
    assert code == 77 and "different person" in err
    assert request_row(ctx, number).status == "pending"
    # A leader fills the step the first approval left; bo's roles fill either.
    assert run(people.leader, "access", "approve", str(number))[0] == 0
    assert request_row(ctx, number).status == "granted"


def test_an_approval_must_fill_a_step_still_open(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    number = ask(run, people.officer, "--file", str(ids[0]), kind="export")
    assert run(people.leader, "access", "approve", str(number))[0] == 0
    code, _, err = run(people.leader2, "access", "approve", str(number))
    assert code == 77 and "still needs legal" in err and "lara has leader" in err
    code, _, err = run(people.custodian, "access", "approve", str(number))
    assert code == 77


def test_restricted_footage_needs_the_leader_in_addition(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    restricted = ids[1]
    assert run(people.custodian, "tag", str(restricted), "--access", "restricted")[0] == 0
    number = ask(run, people.officer, "--file", str(restricted), kind="view")
    code, out, _ = run(people.legal, "access", "approve", str(number))
    assert code == 0 and "still needs leader" in out  # legal alone opens a normal file
    assert run(people.officer, "view", str(restricted))[0] == 77
    assert run(people.leader, "access", "approve", str(number))[0] == 0
    code, out, err = run(people.officer, "view", str(restricted))
    assert code == 0, err
    (event,) = uses(ctx, "file.view")
    assert json.loads(event.details)["restricted"] is True

    # A normal file needs one approval: legal or the leader.
    plain = ask(run, people.officer, "--file", str(ids[0]), kind="view")
    assert run(people.leader, "access", "approve", str(plain))[0] == 0
    assert request_row(ctx, plain).status == "granted"


def test_a_grant_asked_before_the_file_was_restricted_does_not_cover_it(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    number = ask(run, people.officer, "--file", str(ids[1]), kind="view")
    assert run(people.legal, "access", "approve", str(number))[0] == 0
    assert run(people.custodian, "tag", str(ids[1]), "--access", "restricted")[0] == 0
    code, _, err = run(people.officer, "view", str(ids[1]))
    assert code == 77 and "no active view grant" in err


def test_an_expired_grant_is_refused_and_the_refusal_audited(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    number = ask(run, people.officer, "--file", str(ids[0]), kind="view")
    assert run(people.legal, "access", "approve", str(number))[0] == 0
    granted = request_row(ctx, number)
    assert granted.expires_at is not None and granted.decided_at is not None
    assert granted.expires_at - granted.decided_at == timedelta(hours=72)  # [access] default
    assert run(people.officer, "view", str(ids[0]))[0] == 0
    # The grant's time runs out (the ledger keeps its expiry; the CLI's clock is now).
    with ctx.ledger.session() as s:
        past = datetime.now(UTC) - timedelta(minutes=1)
        s.execute(update(AccessRequest).where(AccessRequest.id == number).values(expires_at=past))
    code, _, err = run(people.officer, "view", str(ids[0]))
    assert code == 77 and f"grant {number}" in err and "expired" in err
    assert "sudo dockd access request --file" in err
    (refusal,) = uses(ctx, "access.expired")
    assert (refusal.actor, refusal.subject_id) == ("olga", str(number))
    assert len(uses(ctx, "file.view")) == 1
    code, out, _ = run(people.custodian, "access", "grants", "--format", "json")
    assert json.loads(out) == []
    code, out, _ = run(people.custodian, "access", "history", "--format", "json")
    assert [r["status"] for r in json.loads(out)] == ["expired"]


def test_a_user_without_an_account_is_refused(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    for args in (["view", str(ids[0])], ["access", "request", "--file", str(ids[0]),
                 "--kind", "view", "--reason", "curious"]):  # fmt: skip
        code, _, err = run(64999, *args)
        assert code == 77 and "has no dockd account" in err and "dockd users add" in err
    with ctx.ledger.read() as s:
        assert s.scalars(select(AccessRequest)).first() is None


def test_a_denied_request_is_closed(ctx: Context, ids: list[int], people: People, run: Run) -> None:
    number = ask(run, people.officer, "--case", CASE, kind="external")
    code, _, err = run(people.legal, "access", "deny", str(number), "--reason", "no")
    assert code == 77  # external release is the leader's to decide
    assert run(people.leader, "access", "deny", str(number), "--reason", "not needed")[0] == 0
    code, _, err = run(people.leader2, "access", "approve", str(number))
    assert code == 64 and "denied and is closed" in err
    assert request_row(ctx, number).status == "denied"
    # The requester may withdraw their own request (a denial, with the reason).
    mine = ask(run, people.officer, "--file", str(ids[0]), kind="view")
    assert run(people.officer, "access", "deny", str(mine), "--reason", "not needed")[0] == 0
    assert request_row(ctx, mine).status == "denied"


def test_pending_lists_what_waits_for_each_person(
    ctx: Context, ids: list[int], people: People, run: Run
) -> None:
    export = ask(run, people.officer, "--case", CASE, kind="export")
    external = ask(run, people.officer, "--case", CASE, kind="external")

    def pending(uid: int) -> list[int]:
        code, out, err = run(uid, "access", "pending", "--format", "json")
        assert code == 0, err
        return [r["request"] for r in json.loads(out)]

    assert pending(people.legal) == [export]
    assert pending(people.leader) == [export, external]
    assert pending(people.officer) == []  # their own requests wait for others
    assert run(people.auditor, "access", "pending")[0] == 77  # the auditor changes nothing
    assert run(people.legal, "access", "approve", str(export))[0] == 0
    assert pending(people.legal) == []
    assert pending(people.both) == [export, external]  # the leader's step is still open
    assert run(people.leader, "access", "approve", str(external))[0] == 0
    code, out, _ = run(people.custodian, "access", "grants", "--format", "json")
    assert code == 0
    assert [(g["request"], g["kind"], g["by"]) for g in json.loads(out)] == [
        (external, "external", "olga")
    ]


def test_every_step_is_in_the_audit_chain_and_it_verifies(
    ctx: Context, ids: list[int], people: People, run: Run, tmp_path: Path
) -> None:
    number = ask(run, people.officer, "--file", str(ids[0]), kind="export")
    run(people.legal, "access", "approve", str(number))
    run(people.leader, "access", "approve", str(number))
    assert run(people.officer, "export", str(ids[0]), "--to", str(tmp_path / "b"))[0] == 0
    denied = ask(run, people.other, "--file", str(ids[1]), kind="view")
    run(people.legal, "access", "deny", str(denied), "--reason", "no case")
    with ctx.ledger.read() as s:
        q = select(AuditEvent).where(AuditEvent.subject_type == "access_request")
        steps = [(e.action, e.subject_id, e.actor) for e in s.scalars(q.order_by(AuditEvent.id))]
    n, d = str(number), str(denied)
    assert steps == [
        ("access.request", n, "olga"),
        ("access.approve", n, "lena"),
        ("access.approve", n, "leo"),
        ("access.grant", n, "leo"),
        ("access.request", d, "oscar"),
        ("access.deny", d, "lena"),
    ]
    (use,) = uses(ctx, "file.export")
    assert json.loads(use.details)["grant"] == number
    code, out, err = run(people.auditor, "audit", "verify")
    assert code == 0 and "audit trail OK" in out, err
    code, out, _ = run(people.custodian, "access", "history", "--format", "json")
    history = {r["request"]: r for r in json.loads(out)}
    assert history[number]["status"] == "granted"
    assert history[number]["steps"] == "legal + leader"
    assert history[number]["decisions"] == "approve lena (legal), approve leo (leader)"
    assert history[denied]["status"] == "denied"

    # The same from SQL, for an auditor without the CLI (the documented views).
    conn = sqlite3.connect(ctx.config.ledger.url.removeprefix("sqlite:///"))
    try:
        register = conn.execute(
            "SELECT file_id, accessed_by, approved_by, grant_id FROM v_access_register"
        ).fetchall()
        requests = conn.execute(
            "SELECT request_id, kind, requested_by, status FROM v_access_requests"
            " ORDER BY request_id"
        ).fetchall()
        decisions = conn.execute(
            "SELECT request_id, decision, decided_by FROM v_access_decisions ORDER BY decision_id"
        ).fetchall()
    finally:
        conn.close()
    assert register == [(ids[0], "olga", "lena, leo", number)]
    assert requests == [(number, "export", "olga", "granted"), (denied, "view", "oscar", "denied")]
    assert decisions == [
        (number, "approve", "lena"),
        (number, "approve", "leo"),
        (denied, "deny", "lena"),
    ]


def test_the_access_rule_is_checked() -> None:
    policy = AccessConfig.model_validate({"export": [["legal"], ["leader"]], "view": [["leader"]]})
    assert policy.steps_for("view", restricted=True) == (("leader",),)  # not asked twice
    assert AccessConfig().steps_for("view", restricted=True) == (("legal", "leader"), ("leader",))
    for bad, words in (
        ({"export": [["legal"], ["boss"]]}, "'boss' is not a role"),
        ({"view": []}, "at least one step"),
        ({"view": [[]]}, "at least one role"),
        ({"external": [["auditor"]]}, "not a role"),
        ({"grant_hours": {"view": 0}}, "greater than 0"),
    ):
        with pytest.raises(ValidationError, match=words):
            AccessConfig.model_validate(bad)


# ----------------------------------------------------------------------------- real OS users


@dataclass(frozen=True)
class OsUser:
    login: str
    uid: int


@pytest.fixture
def os_user() -> Iterator[Callable[[], OsUser]]:
    """Real OS users (``useradd``), removed after."""
    need(root=True, tools=("useradd", "userdel"), why="real OS accounts")
    made: list[str] = []

    def make() -> OsUser:
        login = f"dkg-{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", login], check=True)
        made.append(login)
        return OsUser(login, pwd.getpwnam(login).pw_uid)

    yield make
    for login in made:
        subprocess.run(["userdel", login], check=False, capture_output=True)


@pytest.mark.root
def test_real_accounts_request_two_approvals_and_export(
    ctx: Context, clock: FixedClock, rec: Recorder, tmp_path: Path,
    os_user: Callable[[], OsUser],
) -> None:  # fmt: skip
    register(ctx.ledger, clock, rec)
    files = [f.file_id for f in run_ingest(ctx, rec.root).files if f.file_id is not None]
    config = write_config(tmp_path)
    officer, legal, leader, custodian = os_user(), os_user(), os_user(), os_user()

    def dockd(who: OsUser | None, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKD_", "SUDO_"))}
        env.update(COLUMNS="500", DOCKD_CONFIG=str(config))
        if who is not None:
            env.update(SUDO_UID=str(who.uid), SUDO_GID=str(who.uid), SUDO_USER=who.login)
        proc = subprocess.run([DOCKD, *args], capture_output=True, text=True, env=env)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    for user, role in ((officer, "officer"), (legal, "legal"), (leader, "leader"),
                       (custodian, "custodian")):  # fmt: skip
        made = dockd(None, "users", "add", user.login, "--name", user.login, "--role", role)
        assert made.returncode == 0, made.stderr
    assert dockd(custodian, "tag", *map(str, files), "--case", CASE).returncode == 0
    bag = tmp_path / "bag"
    refused = dockd(officer, "export", "--case", CASE, "--to", str(bag))
    assert refused.returncode == 77 and "access request --case" in refused.stderr
    asked = dockd(officer, "access", "request", "--case", CASE, "--kind", "export",
                  "--reason", "court")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    number = asked.stdout.strip()
    own = dockd(officer, "access", "approve", number)
    assert own.returncode == 77 and "cannot approve it" in own.stderr
    assert dockd(legal, "access", "approve", number).returncode == 0
    assert dockd(officer, "export", "--case", CASE, "--to", str(bag)).returncode == 77
    assert dockd(leader, "access", "approve", number).returncode == 0
    done = dockd(officer, "export", "--case", CASE, "--to", str(bag))
    assert done.returncode == 0, done.stderr
    assert (bag / "bagit.txt").is_file()
    with ctx.ledger.read() as s:
        q = select(AuditEvent).where(AuditEvent.action == "file.export")
        actors = {(e.actor, json.loads(e.details)["grant"]) for e in s.scalars(q)}
    assert actors == {(officer.login, int(number))}
    verified = dockd(None, "audit", "verify")
    assert verified.returncode == 0 and "audit trail OK" in verified.stdout

    # Restricted footage needs the leader as well: legal's approval alone grants nothing.
    secret = str(files[0])
    tagged = dockd(custodian, "tag", secret, "--access", "restricted", "--reason", "a minor")
    assert tagged.returncode == 0, tagged.stderr
    viewing = dockd(officer, "access", "request", "--file", secret, "--kind", "view",
                    "--reason", "complaint")  # fmt: skip
    seen = viewing.stdout.strip()
    assert dockd(legal, "access", "approve", seen).returncode == 0
    assert dockd(officer, "view", secret).returncode == 77
    assert dockd(leader, "access", "approve", seen).returncode == 0
    assert dockd(officer, "view", secret).returncode == 0
    # ... until its grant runs out.
    with ctx.ledger.session() as s:
        past = datetime.now(UTC) - timedelta(minutes=1)
        s.execute(
            update(AccessRequest).where(AccessRequest.id == int(seen)).values(expires_at=past)
        )
    expired = dockd(officer, "view", secret)
    assert expired.returncode == 77 and "expired" in expired.stderr
    # A real OS user with no account is refused, told the command that would add them.
    stranger = os_user()
    nobody = dockd(stranger, "access", "request", "--file", secret, "--kind", "view",
                   "--reason", "curious")  # fmt: skip
    assert nobody.returncode == 77 and f"sudo dockd users add {stranger.login}" in nobody.stderr
    verified = dockd(None, "audit", "verify")
    assert verified.returncode == 0 and "audit trail OK" in verified.stdout


def test_a_rule_may_name_every_role_but_the_auditor() -> None:
    assert set(ROLE_WORDS) == {r.value for r in Role} - {Role.AUDITOR.value}


def test_the_example_access_section_is_the_default_rule(tmp_path: Path) -> None:
    """config.example.toml's [access] block states exactly the defaults, and a rule naming
    an unknown role is refused with its key and line."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    assert load_config(example).access == AccessConfig()
    with pytest.raises(ConfigError, match=r"line 3: access.view"):
        parse_config('[access]\n\nview = [["boss"]]\n', source=str(tmp_path / "d.toml"))


def test_a_request_for_the_party_concerned_needs_the_leader_and_names_them_throughout(
    ctx: Context, ids: list[int], people: People, run: Run, tmp_path: Path
) -> None:
    """004 全过程 §27, 001 §20: the party (or a higher office) asks; staff ask for them."""
    code, _, err = run(people.officer, "access", "request", "--case", CASE, "--kind", "export",
                       "--reason", "party asks for a copy", "--for-party", "Wang Wu")  # fmt: skip
    assert code != 0 and "--reference" in err
    code, _, err = run(people.officer, "access", "request", "--case", CASE, "--kind", "view",
                       "--reason", "x", "--for-party", "A", "--for-office", "B",
                       "--reference", "R")  # fmt: skip
    assert code != 0 and "one party or one office" in err

    party = ("--for-party", "Wang Wu", "--reference", "ID 110101199001011234")
    code, out, err = run(people.officer, "access", "request", "--case", CASE, "--kind", "view",
                         "--reason", "the party asks to see the stop", *party)  # fmt: skip
    assert code == 0, err
    number = int(out.strip())
    # view needs legal or leader; for a party the leader in addition: two people
    assert "legal or leader; then leader" in err
    code, out, _ = run(people.legal, "access", "pending", "--format", "json")
    [pending] = [r for r in json.loads(out) if r["request"] == number]
    assert pending["for"] == "party Wang Wu (ID 110101199001011234)"
    assert run(people.legal, "access", "approve", str(number))[0] == 0
    assert request_row(ctx, number).status == "pending"
    assert run(people.leader, "access", "approve", str(number))[0] == 0
    assert request_row(ctx, number).status == "granted"

    code, _, err = run(people.officer, "view", str(ids[0]))
    assert code == 0, err
    [event] = uses(ctx, "file.view")
    assert json.loads(event.details)["on_behalf"] == "party Wang Wu (ID 110101199001011234)"
    code, out, _ = run(people.auditor, "report", "access", "--format", "json")
    [row] = json.loads(out)
    assert (row["by"], row["for"]) == ("olga", "party Wang Wu (ID 110101199001011234)")


def test_a_higher_office_gets_its_copy_with_the_letter_in_the_bag(
    ctx: Context, ids: list[int], people: People, run: Run, tmp_path: Path
) -> None:
    code, out, err = run(people.legal, "access", "request", "--case", CASE, "--kind", "export",
                         "--reason", "review of the stop", "--for-office",
                         "County Procuratorate", "--reference", "letter 2026-17")  # fmt: skip
    assert code == 0, err
    number = int(out.strip())
    assert run(people.leader, "access", "approve", str(number))[0] == 0
    assert request_row(ctx, number).status == "pending"  # legal's step: not the requester
    assert run(people.both, "access", "approve", str(number))[0] == 0
    assert request_row(ctx, number).status == "granted"
    bag = tmp_path / "bag"
    code, _, err = run(people.legal, "export", "--case", CASE, "--to", str(bag))
    assert code == 0, err
    info = (bag / "bag-info.txt").read_text(encoding="utf-8")
    assert "On-Behalf-Of: office County Procuratorate (letter 2026-17)" in info
