"""Auditors read the ledger without root, and never the footage (issue 12).

Real OS accounts made by the test (``groupadd``/``useradd``, removed after): a member of
the ``[ledger] group`` runs plain ``sqlite3 -readonly`` on the SQLite ledger, as
itself (``runuser``), while a real ``dockd run`` ingests a recorder from a loop-mounted
FAT image; the same account cannot read a stored original nor the per-case tree. On
PostgreSQL, ``dockd ledger grant-readonly`` makes a role that reads the views and
nothing else.
"""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url

from dockd.auth.roles import Role
from dockd.config import load_config
from dockd.ledger.db import open_ledger
from dockd.ledger.permissions import secure_sqlite_path
from fixtures.make_recorder import pad_mp4
from tests.helpers.accounts import add_account
from tests.helpers.blockdev import MID_COPY, DockEnv, MiB, wait_for
from tests.helpers.pgserver import PgServer
from tests.helpers.skips import need
from tests.helpers.station import config_text

WAL_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class Auditor:
    user: str
    group: str

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        """``argv`` as this account, not root."""
        return subprocess.run(
            ["runuser", "-u", self.user, "--", *map(str, argv)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def count(self, ledger: Path, view: str = "v_files") -> int:
        """``SELECT count(*)`` on ``view`` with plain ``sqlite3 -readonly``; fails the test
        with sqlite3's own message if the read fails."""
        query = f"SELECT count(*) FROM {view}"  # noqa: S608  (a view name from the test)
        done = self.run("sqlite3", "-readonly", ledger, query)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)


@pytest.fixture
def auditor() -> Iterator[Auditor]:
    """A real group (the ``[ledger] group``) and a real account in it, removed after."""
    need(root=True, tools=("sqlite3", "useradd", "userdel", "groupadd", "groupdel", "runuser"))
    tag = f"{os.getpid() % 100000}"
    who = Auditor(user=f"dkaudu{tag}", group=f"dkaudg{tag}")
    subprocess.run(["groupadd", who.group], check=True)
    try:
        subprocess.run(
            ["useradd", "-M", "-N", "-G", who.group, "-s", "/usr/sbin/nologin", who.user],
            check=True,
        )
        try:
            yield who
        finally:
            subprocess.run(["userdel", who.user], check=True)
    finally:
        subprocess.run(["groupdel", who.group], check=True)


def reachable(path: Path) -> None:
    """Let every user traverse (never list) the directories down to ``path``: pytest
    makes its temporary directories 0700, where /var/lib/dockd is 0751."""
    for d in (path, *path.parents):
        if d == Path("/"):
            break
        mode = stat.S_IMODE(d.stat().st_mode)
        if not mode & 0o001:
            d.chmod(mode | 0o001)


def dockd(config: Path, *args: str, sudo_uid: int | None = None) -> str:
    """``dockd ARGS`` as root: without sudo (``system``), or as sudo by ``sudo_uid``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    if sudo_uid is not None:
        env["SUDO_UID"] = str(sudo_uid)
    done = subprocess.run(
        [sys.executable, "-m", "dockd", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def with_ledger_group(env: DockEnv, group: str) -> None:
    """Set ``[ledger] group`` in the config file the daemon and the CLI read."""
    assert env.config_path is not None
    text = env.config_path.read_text()
    env.config_path.write_text(text.replace("[ledger]\n", f'[ledger]\ngroup = "{group}"\n', 1))


@pytest.mark.root
def test_an_auditor_reads_the_ledger_during_a_dock_and_never_the_footage(
    env: DockEnv, auditor: Auditor
) -> None:
    ledger = env.tmp / "ledger.sqlite3"
    reachable(env.tmp)
    open_ledger(f"sqlite:///{ledger}", group=auditor.group).close()  # as dockd makes it
    env.configure(dock=MID_COPY)
    with_ledger_group(env, auditor.group)
    rec = env.recorder("a", clips=4)
    pad_mp4(rec.path(rec.of_kind("video")[1]), 160 * MiB)  # a copy that lasts a while
    env.register(rec)
    image = env.fat(rec, 1, 160 + 96)
    env.daemon()

    assert auditor.count(ledger) == 0  # before any dock: the group reads, nobody else
    env.attach(image)
    wait_for("a copy to be under way", env.copying, 60, every=0.05)
    counts = []
    while not any(s.ended_at for s in env.sessions()):
        counts.append(auditor.count(ledger))  # each read must succeed mid-ingest
    (session,) = env.wait_sessions(1)
    counts.append(auditor.count(ledger))

    assert session.outcome == "complete", session.notes
    assert counts == sorted(counts), "a reader saw the count go down"
    assert counts[-1] == len(rec.recordings) == len(env.recordings())
    for suffix in ("", *WAL_FILES):
        st = os.stat(f"{ledger}{suffix}")
        assert stat.S_IMODE(st.st_mode) == 0o640, suffix  # the group reads, never writes
        assert st.st_gid == _gid(auditor.group), suffix
    refused = auditor.run("sqlite3", ledger, "DELETE FROM audit_events")
    assert refused.returncode != 0 and "readonly" in refused.stderr

    # the footage: the account cannot read a stored original, nor list the store
    row = env.recordings()[0]
    original = env.store_root / row.store_path
    denied = auditor.run("cat", original)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert auditor.run("ls", env.store_root).returncode != 0
    assert stat.S_IMODE(original.stat().st_mode) == 0o440 and original.stat().st_gid == 0

    # ... nor through the per-case tree (hard links of the originals)
    assert env.config_path is not None
    led = open_ledger(load_config(env.config_path).ledger.url)
    try:
        clerk = add_account(led, "clerk", Role.CUSTODIAN)
    finally:
        led.close()
    dockd(env.config_path, "tag", str(row.id), "--case", "A-2026-001", sudo_uid=clerk)
    by_case = env.tmp / "by-case"
    links = [p for p in by_case.rglob("*") if p.is_file()]
    assert links, "the tagged file has no per-case link"
    for d in (by_case, *(p for p in by_case.rglob("*") if p.is_dir())):
        st = d.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o750, 0), d
    for target in (by_case, links[0]):
        denied = auditor.run("cat" if target.is_file() else "ls", target)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, target


@pytest.mark.root
def test_the_ledger_stays_readable_when_no_dockd_has_it_open(
    tmp_path: Path, auditor: Auditor
) -> None:
    home = tmp_path / "state"
    ledger = home / "ledger.sqlite3"
    reachable(tmp_path)
    led = open_ledger(f"sqlite:///{ledger}", group=auditor.group)
    led.close()  # the last connection closes: SQLite deletes -wal and -shm, dockd not

    assert all(Path(f"{ledger}{s}").exists() for s in WAL_FILES)
    assert auditor.count(ledger) == 0

    # a ledger whose -wal and -shm are gone (closed by a dockd that did not keep them):
    # the next open by dockd puts them back, empty, and the auditor reads again
    for suffix in WAL_FILES:
        Path(f"{ledger}{suffix}").unlink()
    failed = auditor.run("sqlite3", "-readonly", ledger, "SELECT count(*) FROM v_files")
    assert failed.returncode != 0  # what issue 12 saw: "attempt to write a readonly database"
    secure_sqlite_path(ledger, auditor.group)
    assert auditor.count(ledger) == 0
    assert auditor.count(ledger, "v_audit_links") == 0
    for suffix in WAL_FILES:
        st = os.stat(f"{ledger}{suffix}")
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, _gid(auditor.group))
    assert stat.S_IMODE(home.stat().st_mode) == 0o750 and home.stat().st_gid == _gid(auditor.group)


def _gid(group: str) -> int:
    return grp.getgrnam(group).gr_gid


# --------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_grant_readonly_makes_a_role_that_reads_the_views_and_nothing_else(
    tmp_path: Path, pg_server: PgServer
) -> None:
    url = pg_server.new_database()
    open_ledger(url).close()
    config = tmp_path / "dockd.toml"
    config.write_text(config_text(tmp_path, ledger_url=url))
    role = f"auditor_ro_{os.getpid() % 100000}"

    first = dockd(config, "ledger", "grant-readonly", role)
    again = dockd(config, "ledger", "grant-readonly", role)  # idempotent

    assert f"role {role} created (NOLOGIN" in first
    assert f"role {role} already existed" in again and "v_files" in again
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        assert conn.execute("SELECT count(*) FROM v_files").fetchone() == (0,)
        for denied in (
            "SELECT count(*) FROM files",
            "SELECT count(*) FROM audit_events",
            "INSERT INTO audit_events (id) VALUES (1)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(denied)
        conn.execute("RESET ROLE")
        events = conn.execute(
            "SELECT actor, subject_id FROM audit_events WHERE action = 'ledger.grant_readonly'"
        ).fetchall()
        assert [e[1] for e in events] == [role, role]  # each run is in the audit chain
        login = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
        assert login.fetchone() == (False,)
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    verified = dockd(config, "audit", "verify")
    assert verified


def test_grant_readonly_on_sqlite_says_to_use_the_ledger_group(tmp_path: Path) -> None:
    config = tmp_path / "dockd.toml"
    config.write_text(config_text(tmp_path))
    open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", group=None).close()  # as migrated
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockd",
            "--config",
            str(config),
            "ledger",
            "grant-readonly",
            "auditors",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 64, done.stderr
    assert "[ledger] group" in done.stderr and "usermod -aG" in done.stderr
