"""Which of the server processes named by dockd belong to a dead dockd process of this
machine and station (recovery ends those before it asks the ledger anything:
``Ledger.end_dead``), and the oldest PostgreSQL dockd runs on."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlalchemy.exc import OperationalError

from dockd.errors import LedgerError
from dockd.ledger.db import _of_a_dead_process, application_name, check_server, station_tag
from dockd.ledger.failures import OutcomeUnknown, describe_failure, is_ledger_failure
from dockd.runtime import BOOT_ID, MACHINE_ID, process_start

ST = "st-north"  # the station whose recovery asks


def _name(pid: int | None = None, start: int | None = None, **kw: str) -> str:
    return application_name(pid, start, **{"station": ST, **kw})


def _dead(name: str) -> bool:
    return _of_a_dead_process(name, ST)


def _other(text: str) -> str:
    """An 8-character id that is not ``text``'s first 8."""
    return "0" * 8 if not text.startswith("0" * 8) else "1" * 8


def test_this_process_is_alive_and_a_process_that_ended_is_dead() -> None:
    assert not _dead(_name())
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start(child.pid)
        assert start is not None
        assert not _dead(_name(child.pid, start))
    finally:
        child.kill()
        child.wait()
    assert _dead(_name(child.pid, start))


def test_a_pid_now_another_processs_or_of_an_earlier_boot_is_dead() -> None:
    mine = process_start(os.getpid())
    assert mine is not None
    assert _dead(_name(os.getpid(), mine + 1))  # the PID reused
    assert _dead(_name(os.getpid(), mine, boot=_other(BOOT_ID)))
    assert _dead(_name(10**12, 5))  # no such PID


def test_another_machines_or_stations_processes_and_other_names_are_never_ended() -> None:
    """An image may give many hosts one machine id (each boots its own kernel): what
    tells a station's processes from another's on one ledger is the station."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    theirs = _name(os.getpid(), 1, machine=_other(MACHINE_ID), boot=_other(BOOT_ID))
    assert not _dead(theirs)
    # the same machine id, another host's boot or a dead PID, but another station's
    assert not _dead(application_name(os.getpid(), 1, station="st-south", boot=_other(BOOT_ID)))
    assert not _dead(application_name(ended.pid, 1, station="st-south"))
    assert not _dead(application_name(ended.pid, 1))  # a ledger tool's, of no station
    assert _dead(_name(ended.pid, 1))  # (this station's: ended)
    no_pid = f"dockd {MACHINE_ID[:8]} {BOOT_ID[:8]} {station_tag(ST)} x 1"
    for name in ("dockd", "psql", no_pid, "dockd a b c d e f", ""):
        assert not _dead(name)


def test_a_name_of_the_dockd_before_stations_is_judged_by_its_machine() -> None:
    """A process killed before an upgrade named its connections without a station:
    recovery after the upgrade still ends the one that may be committing."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert _dead(f"dockd {MACHINE_ID[:8]} {BOOT_ID[:8]} {ended.pid} 1")
    assert not _dead(
        f"dockd {MACHINE_ID[:8]} {BOOT_ID[:8]} {os.getpid()} {process_start(os.getpid())}"
    )
    assert not _dead(f"dockd {_other(MACHINE_ID)} {BOOT_ID[:8]} {ended.pid} 1")


def test_the_name_fits_in_postgresqls_63_bytes_whole() -> None:
    """A PID is at most 4194304 (pid_max), a start a 64-bit count of ticks; any
    station id is 8 characters in the name."""
    name = application_name(4_194_304, 2**64 - 1, station="a-very-long-station-id" * 4)
    assert len(name.encode()) <= 63, name


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
    assert not _dead(_name(child.pid, 1, machine="unknown"))


def test_a_forked_child_names_its_connections_as_itself() -> None:
    """A child forked after the module was loaded is a process of its own: while it
    runs, its connections are a live process's, not a dead one's."""
    said_r, said_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say its name, wait to be let go
        os.write(said_w, _name().encode())
        os.read(go_r, 1)
        os._exit(0)
    os.close(said_w)
    try:
        said = os.read(said_r, 200).decode()
        assert said.split(" ")[4] == str(pid)
        assert not _dead(said)  # alive: never ended
    finally:
        os.write(go_w, b"x")
        for fd in (said_r, go_r, go_w):
            os.close(fd)
        os.waitpid(pid, 0)
    assert _dead(said)  # ended now: dead
