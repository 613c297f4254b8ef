"""Who acts is known (issue 12), with real OS accounts this test makes with ``useradd``.

``dockd`` runs as a subprocess: as root without sudo (the ``system`` account), as root
under sudo (``SUDO_UID``/``SUDO_USER`` as sudo sets them: the person's account) and as
a plain user (``runuser``). Unknown users are refused with the command that adds them,
a disabled account is refused, a non-admin cannot manage accounts, every change is an
audit event signed by its real author, and ``dockd audit verify`` holds after each.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from dockd.auth.actor import process_identity
from dockd.auth.passwords import verify_password
from dockd.cli import main
from dockd.ledger.models import Account, AuditEvent
from tests.helpers.cli_station import Station, make_station
from tests.helpers.skips import need

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def _the_real_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about who the OS says runs dockd: a command run in-process here
    (in a child that became the user) asks the OS, not tests/conftest.py's stand-in."""
    monkeypatch.setattr("dockd.cli.common.process_identity", process_identity)


@dataclass(frozen=True)
class OsUser:
    login: str
    uid: int


@pytest.fixture
def os_user() -> Iterator[Callable[[], OsUser]]:
    """Make real OS users with unique names; each is removed (``userdel -r``) after."""
    need(root=True, tools=("useradd", "userdel", "runuser"), why="real OS accounts")
    made: list[str] = []

    def make() -> OsUser:
        login = f"dkt-{uuid.uuid4().hex[:8]}"
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", login], check=True)
        made.append(login)
        return OsUser(login, pwd.getpwnam(login).pw_uid)

    yield make
    for login in made:
        subprocess.run(["userdel", "-r", login], check=False, capture_output=True)


@pytest.fixture
def station(tmp_path: Path) -> Station:
    """A station whose ledger exists (made as `dockd ledger migrate` makes it at install)."""
    st = make_station(tmp_path / "station")
    with st.ledger():
        pass
    return st


def dockd(
    st: Station, *args: str, sudo: OsUser | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``dockd`` as root: without sudo, or as sudo would for ``sudo``'s person."""
    env = {k: v for k, v in st.env().items() if not k.startswith("SUDO_")}
    if sudo is not None:
        env.update(SUDO_UID=str(sudo.uid), SUDO_GID=str(sudo.uid), SUDO_USER=sudo.login)
        env["SUDO_COMMAND"] = " ".join(["dockd", *args])
    proc = subprocess.run(
        st.argv(*args), input=stdin, capture_output=True, text=True, env=env, check=False
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def verified(st: Station) -> None:
    proc = dockd(st, "audit", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "audit trail OK" in proc.stdout


def account_events(st: Station) -> list[AuditEvent]:
    with st.ledger() as led, led.read() as s:
        query = select(AuditEvent).where(AuditEvent.subject_type == "account")
        return list(s.scalars(query.order_by(AuditEvent.id)))


def add(st: Station, user: OsUser, *roles: str, by: OsUser | None = None) -> None:
    role_args = [w for r in roles for w in ("--role", r)]
    proc = dockd(st, "users", "add", user.login, "--name", f"N {user.login}", *role_args, sudo=by)
    assert proc.returncode == 0, proc.stderr
    assert f"added account {user.login}" in proc.stdout
    assert f"uid {user.uid}" in proc.stdout  # bound to the OS user without --uid


def test_root_without_sudo_is_system_and_adds_the_first_account(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    proc = dockd(station, "whoami")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("system (") and "admin" in proc.stdout
    li = os_user()
    add(station, li, "admin")
    listed = json.loads(dockd(station, "users", "list", "--format", "json").stdout)
    assert {(a["login"], a["uid"], tuple(a["roles"])) for a in listed} == {
        ("system", 0, ("admin",)),
        (li.login, li.uid, ("admin",)),
    }
    [event] = account_events(station)
    assert (event.action, event.subject_id, event.actor) == ("account.add", li.login, "system")
    verified(station)


def test_under_sudo_dockd_acts_as_sudo_uids_account(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    admin, legal = os_user(), os_user()
    add(station, admin, "admin")
    add(station, legal, "legal", "leader", by=admin)  # the first admin adds the next
    proc = dockd(station, "whoami", sudo=legal)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{legal.login} (N {legal.login}; leader, legal)"
    events = account_events(station)
    assert [(e.subject_id, e.actor) for e in events] == [
        (admin.login, "system"),
        (legal.login, admin.login),
    ]
    verified(station)


def test_an_unknown_user_under_sudo_is_refused_with_the_command_that_adds_them(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    stranger = os_user()
    proc = dockd(station, "whoami", sudo=stranger)
    assert proc.returncode == 77
    assert f"{stranger.login} has no dockd account" in proc.stderr
    assert f"sudo dockd users add {stranger.login} --name 'FULL NAME' --role ROLE" in proc.stderr
    proc = dockd(station, "users", "list", sudo=stranger)
    assert proc.returncode == 77 and "users add" in proc.stderr


def as_user(st: Station, user: OsUser, config: Path, *args: str) -> tuple[int, str]:
    """Run ``dockd`` as ``user`` (not root): through ``runuser`` when the user can run
    this interpreter; where it lives in a directory closed to other users (a pyenv
    under /root), in a child process that drops to the user's uid before ``main``."""
    env = {k: v for k, v in st.env().items() if not k.startswith("SUDO_")}
    probe = ["runuser", "-u", user.login, "--", sys.executable, "-c", "pass"]
    if subprocess.run(probe, env=env, capture_output=True, check=False).returncode == 0:
        cmd = ["runuser", "-u", user.login, "--", st.argv()[0], "-c", str(config), *args]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stderr

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(read)
            sys.stdout = sys.stderr = os.fdopen(write, "w")
            for key in [k for k in os.environ if k.startswith("SUDO_")]:
                del os.environ[key]
            os.environ["DOCKD_RUNTIME_DIR"] = str(st.runtime)
            os.setgroups([])
            os.setgid(user.uid)
            os.setuid(user.uid)
            code = main(["-c", str(config), *args])
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as stream:
        out = stream.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_a_plain_user_who_cannot_open_the_ledger_is_told_the_add_command(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    """The ledger is root's (0640 in a 0750 directory); a user running dockd without sudo
    cannot be looked up and is refused, told to use sudo and how an admin adds them."""
    dockd(station, "whoami")  # the ledger exists
    user = os_user()
    # The config where the user can read it (as /etc/dockd/dockd.toml is); the ledger
    # stays in the test's root-only directory.
    public = Path(tempfile.mkdtemp(prefix="dockd-accounts-"))
    try:
        public.chmod(0o755)
        config = public / "dockd.toml"
        shutil.copyfile(station.config, config)
        config.chmod(0o644)
        code, err = as_user(station, user, config, "whoami")
    finally:
        shutil.rmtree(public)
    assert code == 77, err
    assert f"{user.login} (uid {user.uid}) ran dockd without sudo" in err
    assert f"sudo dockd users add {user.login} --name 'FULL NAME' --role ROLE" in err


def test_a_disabled_account_is_refused(station: Station, os_user: Callable[[], OsUser]) -> None:
    gone = os_user()
    add(station, gone, "custodian")
    proc = dockd(station, "users", "disable", gone.login, "--reason", "moved to another unit")
    assert proc.returncode == 0, proc.stderr
    verified(station)
    proc = dockd(station, "whoami", sudo=gone)
    assert proc.returncode == 77
    assert f"the account {gone.login} was disabled on" in proc.stderr
    assert "moved to another unit" in proc.stderr
    event = account_events(station)[-1]
    assert (event.action, event.subject_id) == ("account.disable", gone.login)


def test_a_non_admin_cannot_manage_accounts(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    custodian, newcomer = os_user(), os_user()
    add(station, custodian, "custodian")
    proc = dockd(
        station,
        "users",
        "add",
        newcomer.login,
        "--name",
        "New",
        "--role",
        "admin",
        sudo=custodian,
    )
    assert proc.returncode == 77
    assert "`dockd users add` needs the role admin" in proc.stderr
    assert f"{custodian.login} has custodian" in proc.stderr
    assert f"sudo dockd users roles {custodian.login} --add admin" in proc.stderr
    proc = dockd(station, "users", "roles", custodian.login, "--add", "admin", sudo=custodian)
    assert proc.returncode == 77  # nor give themselves a role
    listed = json.loads(dockd(station, "users", "list", "--format", "json").stdout)
    assert newcomer.login not in {a["login"] for a in listed}
    assert len(account_events(station)) == 1
    verified(station)


def test_roles_given_and_taken_are_audited_with_their_author(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    admin, person = os_user(), os_user()
    add(station, admin, "admin")
    add(station, person, "legal")
    proc = dockd(
        station,
        "users",
        "roles",
        person.login,
        "--add",
        "auditor",
        "--remove",
        "legal",
        sudo=admin,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{person.login} has auditor"
    verified(station)
    event = account_events(station)[-1]
    assert (event.action, event.subject_id, event.actor) == (
        "account.roles",
        person.login,
        admin.login,
    )
    assert json.loads(event.details) == {
        "added": ["auditor"],
        "removed": ["legal"],
        "roles": ["auditor"],
    }
    assert dockd(station, "whoami", sudo=person).stdout.strip().endswith("; auditor)")


def test_a_password_is_stored_as_argon2id_and_verifies(
    station: Station, os_user: Callable[[], OsUser]
) -> None:
    user = os_user()
    proc = dockd(
        station,
        "users",
        "add",
        user.login,
        "--name",
        "Web",
        "--role",
        "auditor",
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    assert proc.returncode == 0, proc.stderr
    with station.ledger() as led, led.read() as s:
        acc = s.scalar(select(Account).where(Account.login == user.login))
    assert acc is not None and acc.password_hash is not None
    assert acc.password_hash.startswith("$argon2id$")
    assert verify_password(acc, "correct horse battery staple")
    assert not verify_password(acc, "correct horse battery")
    event = account_events(station)[-1]
    assert json.loads(event.details)["password"] is True
    assert "argon2" not in event.details
    verified(station)
