"""Which of the server processes named by dockd belong to a dead dockd process of this
host (recovery ends those before it asks the ledger anything: ``Ledger.end_dead``)."""

from __future__ import annotations

import os
import subprocess

from dockd.ledger.db import _of_a_dead_process, application_name
from dockd.runtime import BOOT_ID


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_process_of_this_host_is_dead_when_its_pid_is_gone_or_of_an_earlier_boot() -> None:
    assert not _of_a_dead_process(application_name())  # this one
    assert _of_a_dead_process(application_name(_dead_pid()))
    earlier = "0" * 8 if not BOOT_ID.startswith("0" * 8) else "1" * 8
    assert _of_a_dead_process(application_name(os.getpid(), earlier))


def test_another_hosts_processes_and_other_names_are_never_ended() -> None:
    theirs = application_name(_dead_pid()).rsplit(" ", 1)[0] + " another-station"
    assert not _of_a_dead_process(theirs)
    assert not _of_a_dead_process("dockd")
    assert not _of_a_dead_process(f"dockd {BOOT_ID[:8]} x host")
    assert not _of_a_dead_process("psql")


def test_the_name_fits_postgresqls_63_bytes() -> None:
    assert len(application_name(2**22).encode()) <= 63
