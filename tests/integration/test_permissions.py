"""R15: the ledger (officers' names, source paths, hashes) is not readable by every user.

A ledger dockd creates is 0640 in 0750 directories owned by the ``[ledger] group``;
SQLite's -wal and -shm follow the database file; an existing world-readable ledger is
tightened at open with a warning; and nothing a command creates is world-readable.
"""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from dockd.cli import main
from dockd.ledger import registry
from dockd.ledger.db import open_ledger
from dockd.runtime import RUNTIME_ENV
from fixtures.make_recorder import Recorder
from tests.helpers.skips import need
from tests.helpers.station import write_config


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def station(tmp_path: Path, ledger: Path, extra: str = "") -> Path:
    """The test station's config file with its SQLite ledger at ``ledger``."""
    conf = write_config(tmp_path, extra)
    text = conf.read_text(encoding="utf-8")
    conf.write_text(
        text.replace(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", f"sqlite:///{ledger}"),
        encoding="utf-8",
    )
    return conf


def test_fresh_ledger_is_0640_in_0750_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "var" / "lib" / "ledger.sqlite3"
    conf = station(tmp_path, ledger)
    previous = os.umask(0o022)  # a lax umask, as a shell usually has
    try:
        code, _, err = run(
            capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", "ZFY1"
        )
        assert code == 0, err
        assert os.umask(0o022) == 0o022  # main gives the caller its umask back
    finally:
        os.umask(previous)
    assert mode(ledger) == 0o640
    assert mode(ledger.parent) == 0o750 and mode(ledger.parent.parent) == 0o750

    # SQLite creates -wal and -shm beside the database with the database's mode,
    # even under a umask that would make them world-readable
    previous = os.umask(0o000)
    try:
        led = open_ledger(f"sqlite:///{ledger}")
        try:
            with led.session() as s:
                registry.add_device(
                    s,
                    number="DV-0002",
                    serial="ZFY2",
                    brand="Test",
                    model="BWC-1",
                    at=datetime(2026, 1, 1, tzinfo=UTC),
                    station="st-test",
                    actor="admin",
                )
            for side in ("-wal", "-shm"):
                path = ledger.with_name(ledger.name + side)
                assert mode(path) == 0o640, side
                assert os.stat(path).st_gid == os.stat(ledger).st_gid
        finally:
            led.close()
    finally:
        os.umask(previous)


@pytest.fixture
def ledger_group() -> Iterator[tuple[str, str]]:
    """A real group for the ledger, created for the test and removed after: the name, and
    the config text that selects it."""
    need(root=True, tools=("groupadd", "groupdel"), why="a real group owns the ledger")
    name = f"dockdt{os.getpid() % 100000}"
    extra = f'group = "{name}"\n'  # appended to the [ledger] table
    try:
        grp.getgrnam(name)
        created = False
    except KeyError:
        subprocess.run(["groupadd", name], check=True)
        created = True
    try:
        yield name, extra
    finally:
        if created:
            subprocess.run(["groupdel", name], check=True)


def test_ledger_files_belong_to_the_ledger_group(
    tmp_path: Path, ledger_group: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, extra = ledger_group
    gid = grp.getgrnam(name).gr_gid
    ledger = tmp_path / "ledger" / "ledger.sqlite3"
    conf = station(tmp_path, ledger, extra)
    code, _, err = run(capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", "Z")
    assert code == 0, err
    assert "does not exist" not in err
    assert os.stat(ledger).st_gid == gid and os.stat(ledger.parent).st_gid == gid
    assert mode(ledger) == 0o640 and mode(ledger.parent) == 0o750

    led = open_ledger(f"sqlite:///{ledger}", group=name)
    try:
        with led.session() as s:
            registry.add_officer(
                s,
                badge="012345",
                name="Zhang Wei",
                at=datetime.now(UTC),
                station="st-test",
                actor="admin",
            )
        for side in ("-wal", "-shm"):
            assert os.stat(ledger.with_name(ledger.name + side)).st_gid == gid, side
    finally:
        led.close()


def test_missing_group_keeps_the_current_group_and_says_how_to_create_it(
    tmp_path: Path,
) -> None:
    group = f"nosuchgrp{os.getpid() % 100000}"
    with capture_logs() as logs:
        for name in ("a", "b"):
            open_ledger(f"sqlite:///{tmp_path / name / 'ledger.sqlite3'}", group=group).close()
    warnings = [e for e in logs if group in e["event"]]
    assert len(warnings) == 1, logs  # once per process, not once per ledger
    assert f"groupadd {group}" in warnings[0]["event"]
    assert warnings[0]["log_level"] == "warning"
    ledger = tmp_path / "a" / "ledger.sqlite3"
    assert os.stat(ledger).st_gid == os.getegid()
    assert mode(ledger) == 0o640


def test_world_readable_ledger_is_tightened_at_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = tmp_path / "ledger" / "ledger.sqlite3"
    conf = station(tmp_path, ledger)
    assert run(capsys, "--config", str(conf), "ledger", "migrate")[0] == 0
    ledger.chmod(0o664)  # an admin's group-writable choice, plus world-readable
    ledger.parent.chmod(0o755)

    code, _, err = run(capsys, "--config", str(conf), "devices", "list")
    assert code == 0
    assert mode(ledger) == 0o660  # the world's bits are gone, the admin's group bits kept
    assert mode(ledger.parent) == 0o750
    assert f"{ledger} was open to every user (mode 0664)" in err
    assert f"{ledger.parent} was open to every user (mode 0755)" in err


def test_shared_directory_is_left_alone_but_the_ledger_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    (shared / "something-else.txt").write_text("not ours")
    ledger = shared / "ledger.sqlite3"
    conf = station(tmp_path, ledger)
    code, _, err = run(capsys, "--config", str(conf), "ledger", "migrate")
    assert code == 0
    assert f"{shared} is open to every user (mode 0755) and shared with other files" in err
    ledger.chmod(0o644)

    code, _, err = run(capsys, "--config", str(conf), "devices", "list")
    assert code == 0
    assert mode(ledger) == 0o640
    assert mode(shared) == 0o755


def test_nothing_an_ingest_creates_is_world_readable(
    tmp_path: Path,
    recorder: Recorder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(RUNTIME_ENV, str(tmp_path / "run"))  # recorder locks of this test only
    ledger = tmp_path / "ledger" / "ledger.sqlite3"
    conf = station(tmp_path, ledger)
    previous = os.umask(0o000)
    try:
        code, _, err = run(
            capsys, "--config", str(conf), "devices", "add", "DV-0001", "--serial", recorder.serial
        )
        assert code == 0, err
        code, out, err = run(capsys, "--config", str(conf), "ingest", str(recorder.root))
        assert code == 0, err
    finally:
        os.umask(previous)
    code, out, _ = run(capsys, "--config", str(conf), "ledger", "query", "--format", "json")
    assert len(json.loads(out)) == len(recorder.recordings)
    tops = (tmp_path / "store", ledger.parent, tmp_path / "run")
    created = [p for top in tops for p in [top, *top.rglob("*")]]
    assert len(created) > len(recorder.recordings)
    open_to_all = [f"{p} {mode(p):04o}" for p in created if mode(p) & 0o007]
    assert open_to_all == []
