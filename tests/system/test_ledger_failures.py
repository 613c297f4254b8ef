"""A ledger that is full, read-only, locked or unreachable: one message, exit 75, no traceback.

The failures are real: a small tmpfs filled to the last block, the same tmpfs
remounted read-only, a second SQLite connection holding the write lock, a TCP port
where no PostgreSQL listens, and one that accepts connections but never answers.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockd.cli import main
from dockd.errors import LedgerError
from dockd.ledger.failures import describe_failure
from tests.helpers.skips import need
from tests.helpers.station import write_config

DOCKD = Path(sys.executable).with_name("dockd")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_message(err: str, *expected: str) -> None:
    """stderr is exactly one ``dockd: ...`` line saying all of ``expected``, no traceback."""
    assert err.startswith("dockd: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for phrase in expected:
        assert phrase in err, f"{phrase!r} not in {err!r}"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB tmpfs, unmounted after the test."""
    need(root=True, tools=("mount", "umount"), why="the ledger lives on a small real tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(fs: Path) -> Path:
    """Write zeros to ``fs`` until the filesystem says it is full; return the filler."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        block = b"\0" * 4096
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC  # really full
                break
    finally:
        os.close(fd)
    st = os.statvfs(fs)
    assert st.f_bavail == 0
    return filler


def ledger_config(tmp_path: Path, url: str) -> Path:
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", url), encoding="utf-8")
    return path


def test_full_ledger_filesystem_says_free_space_and_exits_75(
    tmp_path: Path, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{small_fs / 'ledger' / 'ledger.sqlite3'}"
    conf = ledger_config(tmp_path, url)
    code, _, err = run(capsys, "--config", str(conf), "ledger", "migrate")
    assert code == 0, err
    filler = fill(small_fs)

    code, out, err = run(
        capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", "ZFY1"
    )
    assert code == 75
    assert_one_message(err, url, "full", f"free space on the filesystem of {small_fs / 'ledger'}")

    # doing what the message says is enough: the same command then works
    filler.unlink()
    code, _, err = run(
        capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", "ZFY1"
    )
    assert code == 0, err
    code, out, _ = run(capsys, "--config", str(conf), "devices", "list", "--format", "json")
    assert [d["number"] for d in json.loads(out)] == ["DV-0001"]


def test_full_filesystem_for_a_new_ledger_through_the_installed_command(
    tmp_path: Path, small_fs: Path
) -> None:
    url = f"sqlite:///{small_fs / 'ledger.sqlite3'}"
    conf = ledger_config(tmp_path, url)
    fill(small_fs)
    proc = subprocess.run(
        [str(DOCKD), "--config", str(conf), "devices", "add", "DV-0001", "--serial", "ZFY1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 75
    # a new ledger warns first that its group does not exist on this machine (maybe)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dockd:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert url in lines[0] and f"free space on the filesystem of {small_fs}" in lines[0]


def test_read_only_ledger_filesystem_says_remount(
    tmp_path: Path, small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{small_fs / 'ledger.sqlite3'}"
    conf = ledger_config(tmp_path, url)
    assert run(capsys, "--config", str(conf), "ledger", "migrate")[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)

    code, _, err = run(
        capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", "ZFY1"
    )
    assert code == 75
    assert_one_message(err, url, "read-only", "remount it read-write")


def test_locked_ledger_says_another_process_holds_it(tmp_path: Path) -> None:
    db = tmp_path / "ledger.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            other.execute("INSERT INTO t VALUES (1)")
    finally:
        other.close()
        holder.close()
    err = describe_failure(f"sqlite:///{db}", caught.value)
    assert isinstance(err, LedgerError) and err.exit_code == 75
    assert str(db) in str(err) and "another process holds it locked" in str(err)
    assert "retry" in str(err)


def refusing_port() -> socket.socket:
    """A TCP port on 127.0.0.1 that is bound (nobody else gets it) but refuses connections."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def test_migrate_against_unreachable_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with refusing_port() as sock:
        port = sock.getsockname()[1]
        url = f"postgresql+psycopg://dockd:s3cret@127.0.0.1:{port}/ledger"
        conf = ledger_config(tmp_path, url)
        proc = subprocess.run(
            [str(DOCKD), "--config", str(conf), "ledger", "migrate"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        code, _, err = run(capsys, "--config", str(conf), "devices", "list")
    assert proc.returncode == 75 and proc.stdout == ""
    for message in (proc.stderr, err):
        assert_one_message(
            message,
            f"postgresql+psycopg://dockd:***@127.0.0.1:{port}/ledger",
            f"is PostgreSQL running at 127.0.0.1:{port}?",
            "[ledger] url",
        )
        assert "s3cret" not in message
    assert code == 75


def test_postgresql_that_never_answers_times_out(tmp_path: Path) -> None:
    """A server that accepts the TCP connection and then says nothing (a hung host, a
    firewall that swallows packets) must not hang dockd: the connect timeout ends it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        conf = ledger_config(tmp_path, f"postgresql+psycopg://dockd@127.0.0.1:{port}/ledger")
        proc = subprocess.run(
            [str(DOCKD), "--config", str(conf), "ledger", "migrate"],
            capture_output=True,
            text=True,
            timeout=300,  # a safety net only: without a connect timeout this would hang
        )
    assert proc.returncode == 75
    assert_one_message(proc.stderr, f"127.0.0.1:{port}", "timeout", "is PostgreSQL running")
