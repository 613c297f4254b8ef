"""Which of the server processes named by dockd belong to a dead dockd process of this
machine (recovery ends those before it asks the ledger anything: ``Ledger.end_dead``),
and the oldest PostgreSQL dockd runs on."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy.exc import OperationalError

from dockd.errors import LedgerError
from dockd.ledger.db import _of_a_dead_process, application_name, check_server
from dockd.ledger.failures import OutcomeUnknown, describe_failure, is_ledger_failure
from dockd.runtime import BOOT_ID, MACHINE_ID, process_start


def _other(text: str) -> str:
    """An 8-character id that is not ``text``'s first 8."""
    return "0" * 8 if not text.startswith("0" * 8) else "1" * 8


def test_this_process_is_alive_and_a_process_that_ended_is_dead() -> None:
    assert not _of_a_dead_process(application_name())
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start(child.pid)
        assert start is not None
        assert not _of_a_dead_process(application_name(child.pid, start))
    finally:
        child.kill()
        child.wait()
    assert _of_a_dead_process(application_name(child.pid, start))


def test_a_pid_now_another_processs_or_of_an_earlier_boot_is_dead() -> None:
    mine = process_start(os.getpid())
    assert mine is not None
    assert _of_a_dead_process(application_name(os.getpid(), mine + 1))  # the PID reused
    assert _of_a_dead_process(application_name(os.getpid(), mine, boot=_other(BOOT_ID)))
    assert _of_a_dead_process(f"dockd {MACHINE_ID[:8]} {BOOT_ID[:8]} {10**12} 5")  # no such


def test_another_machines_processes_and_other_names_are_never_ended() -> None:
    theirs = application_name(os.getpid(), 1, machine=_other(MACHINE_ID), boot=_other(BOOT_ID))
    assert not _of_a_dead_process(theirs)
    for name in ("dockd", "psql", f"dockd {MACHINE_ID[:8]} {BOOT_ID[:8]} x 1", ""):
        assert not _of_a_dead_process(name)


def test_the_name_fits_in_postgresqls_63_bytes_whole() -> None:
    assert len(application_name(4_194_304, 2**63).encode()) <= 63


def test_a_postgresql_older_than_14_is_refused_with_what_to_do() -> None:
    with pytest.raises(LedgerError, match=r"PostgreSQL 13\.9; dockd needs 14 or later"):
        check_server((13, 9), "postgresql+psycopg://dockd@db/ledger")
    check_server((14, 0), "postgresql+psycopg://dockd@db/ledger")
    check_server(None, "postgresql+psycopg://dockd@db/ledger")


def test_a_commit_whose_outcome_is_unknown_is_a_ledger_failure_a_person_reads() -> None:
    """The CLI turns a ledger failure into its exit-75 message, not a traceback."""
    lost = OperationalError("COMMIT", {}, Exception("server closed the connection"))
    try:
        raise OutcomeUnknown("whether the ledger's last commit landed is not known") from lost
    except OutcomeUnknown as exc:
        assert is_ledger_failure(exc)
        said = str(describe_failure("postgresql+psycopg://dockd@db/ledger", exc))
    assert said.startswith("ledger postgresql+psycopg://dockd@db/ledger:"), said


def test_a_machine_without_an_id_ends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container without /etc/machine-id may share its host's boot and not see the
    other's processes: it cannot tell a dead process of its own, so it ends none."""
    child = subprocess.Popen(["true"])
    child.wait()
    monkeypatch.setattr("dockd.ledger.db.MACHINE_ID", "unknown")
    assert not _of_a_dead_process(application_name(child.pid, 1, machine="unknown"))


def test_a_forked_child_names_its_connections_as_itself() -> None:
    """A child forked after the module was loaded is a process of its own: while it
    runs, its connections are a live process's, not a dead one's."""
    said_r, said_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say its name, wait to be let go
        os.write(said_w, application_name().encode())
        os.read(go_r, 1)
        os._exit(0)
    os.close(said_w)
    try:
        said = os.read(said_r, 200).decode()
        assert said.split(" ")[3] == str(pid)
        assert not _of_a_dead_process(said)  # alive: never ended
    finally:
        os.write(go_w, b"x")
        for fd in (said_r, go_r, go_w):
            os.close(fd)
        os.waitpid(pid, 0)
    assert _of_a_dead_process(said)  # ended now: dead
