"""``dockd config check`` checks more than the file: the places it names, their permissions
and the ledger, each problem with its key and what to do (errors exit 78, warnings do not);
``--show`` prints the policy in force."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockd.cli import main
from dockd.ledger.db import open_ledger
from tests.helpers.skips import need
from tests.helpers.station import config_text


def write(tmp_path: Path, extra: str = "", *, ledger_url: str | None = None) -> Path:
    conf = tmp_path / "dockd.toml"
    conf.write_text(config_text(tmp_path, extra, ledger_url=ledger_url), encoding="utf-8")
    return conf


def check(conf: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["-c", str(conf), "config", "check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def with_ledger(tmp_path: Path) -> None:
    open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}", group=None).close()


def test_a_new_station_is_ok_its_missing_places_are_made_later_and_no_ledger_appears(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path)
    code, out, err = check(conf, capsys)
    assert code == 0, err
    assert out.startswith("OK: ")
    assert f"[store] root: {tmp_path / 'store'} is not there yet; dockd creates it" in out
    assert "warnings:" in err and "[ledger] url: no ledger at" in err
    assert "`sudo dockd ledger migrate`" in err
    assert not (tmp_path / "ledger.sqlite3").exists()
    assert not (tmp_path / "store").exists()


def test_a_store_that_cannot_be_created_is_an_error_naming_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "disk").write_text("not a directory")
    conf = write(tmp_path, f'[reports]\nby_case_root = "{tmp_path / "disk" / "by-case"}"\n')
    with_ledger(tmp_path)
    code, out, err = check(conf, capsys)
    assert code == 78
    assert not out.startswith("OK")
    assert "errors:" in err
    where = tmp_path / "disk" / "by-case"
    assert f"[reports] by_case_root: {where} is not there and cannot be created" in err
    assert "set [reports] by_case_root elsewhere" in err


def test_a_world_readable_store_is_an_error_with_the_chmod_that_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path)
    with_ledger(tmp_path)
    store = tmp_path / "store"
    store.mkdir(mode=0o755)
    store.chmod(0o755)
    code, _, err = check(conf, capsys)
    assert code == 78
    assert f"[store] root: {store} is readable by every user (mode 0755)" in err
    assert f"chmod o-rwx {store}" in err
    store.chmod(0o750)

    code, out, err = check(conf, capsys)
    assert code == 0, err
    assert f"[store] root: {store} is a writable directory" in out


def test_the_web_views_export_packages_are_checked_where_the_config_puts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Export packages are copies of originals: the default place beside the store and a
    configured ``[web] exports`` are each checked like footage (not world-readable)."""
    with_ledger(tmp_path)
    beside = tmp_path / "web-exports"
    beside.mkdir(mode=0o755)
    beside.chmod(0o755)
    code, _, err = check(write(tmp_path), capsys)
    assert code == 78
    assert f"[web] exports: {beside} is readable by every user (mode 0755)" in err
    beside.chmod(0o700)
    assert check(write(tmp_path), capsys)[0] == 0

    elsewhere = tmp_path / "disk" / "exports"
    (tmp_path / "disk").write_text("not a directory")
    code, _, err = check(write(tmp_path, f'[web]\nexports = "{elsewhere}"\n'), capsys)
    assert code == 78
    assert f"[web] exports: {elsewhere} is not there and cannot be created" in err


def test_a_store_path_that_is_a_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path)
    with_ledger(tmp_path)
    (tmp_path / "store").write_text("oops")
    code, _, err = check(conf, capsys)
    assert code == 78
    assert f"[store] root: {tmp_path / 'store'} is not a directory" in err


def test_a_trash_on_another_filesystem_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem of its own")
    with tempfile.TemporaryDirectory(dir=other) as trash:
        conf = write(tmp_path, f'[retention]\ntrash = "{trash}"\n')
        with_ledger(tmp_path)
        code, _, err = check(conf, capsys)
    assert code == 78
    assert f"[retention] trash: {trash} is not on the store's filesystem" in err


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` as a read-only bind mount of itself: unwritable even for root."""
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(directory)], check=True, capture_output=True
        )
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.mark.root
def test_an_unwritable_store_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need(root=True, tools=("mount", "umount"), why="a read-only bind mount")
    conf = write(tmp_path)
    with_ledger(tmp_path)
    store = tmp_path / "store"
    store.mkdir(mode=0o750)
    with read_only(store):
        code, _, err = check(conf, capsys)
    assert code == 78
    assert f"[store] root: {store} is not writable by this process" in err
    assert "remount it rw" in err


def test_an_unreachable_postgresql_ledger_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql+psycopg://dockd@127.0.0.1:9/dockd?connect_timeout=3"
    conf = write(tmp_path, ledger_url=url)
    code, _, err = check(conf, capsys)
    assert code == 78
    assert "[ledger] url:" in err
    assert "127.0.0.1:9" in err and "PostgreSQL" in err


def test_the_ledger_is_opened_read_only_and_its_schema_and_mode_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path)
    with_ledger(tmp_path)
    ledger = tmp_path / "ledger.sqlite3"
    before = ledger.stat().st_mtime_ns
    code, out, err = check(conf, capsys)
    assert code == 0, err
    assert "[ledger] url: sqlite:///" in out and "opened read-only: schema" in out
    assert ledger.stat().st_mtime_ns == before
    ledger.chmod(0o644)
    code, _, err = check(conf, capsys)
    assert code == 78
    assert f"the ledger {ledger} is open to every user (mode 0644)" in err
    assert f"chmod o-rwx {ledger}" in err


def test_findings_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path)
    code, out, _ = check(conf, capsys, "--format", "json")
    assert code == 0
    found = json.loads(out)
    assert {"level": "warning", "key": "[ledger] url"}.items() <= found[-1].items()
    assert {f["key"] for f in found} >= {"[store] root", "[store] quarantine", "[retention] trash"}


def test_config_errors_still_give_key_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path, "[ingest]\nverfy = 1\n")
    code, _, err = check(conf, capsys)
    assert code == 78
    assert "ingest.verfy: unknown key" in err and "line " in err


POLICY = """
[retention.categories.traffic]
days = 400
description = "traffic stops"
[schedule]
fixity = "15 4 * * *"
archive = ""
[[archive.targets]]
name = "usb1"
path = "/media/usb1"
kind = "removable"
[[naming]]
name = "acme"
pattern = '^ACME_(?P<device>[A-Z0-9-]+)_(?P<timestamp>\\d{14})$'
timestamp_format = "%Y%m%d%H%M%S"
[access]
view = [["leader"]]
"""


def test_show_prints_the_policy_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = write(tmp_path, POLICY)
    code, out, err = check(conf, capsys, "--show")
    assert code == 0, err
    assert "traffic: keep 400 days  (traffic stops)" in out
    assert "routine [default]: keep 180 days" in out
    assert re.search(r"fixity: 15 4 \* \* \*  next: \d{4}-\d\d-\d\d 04:15, ", out), out
    assert "archive: off" in out
    assert "placed by: custodian, legal, leader; released by: legal, leader" in out
    assert "usb1 (removable): /media/usb1" in out
    assert "acme: ^ACME_" in out
    assert "accepted recorders:" in out and "an unregistered recorder: quarantine" in out
    assert "view: leader; grant lasts 72 h" in out
    assert not (tmp_path / "ledger.sqlite3").exists()


def test_show_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path, POLICY)
    code, out, _ = check(conf, capsys, "--show", "--format", "json")
    assert code == 0
    policy = json.loads(out)
    assert policy["retention"]["categories"]["traffic"]["keep"] == "400 days"
    fixity = policy["schedule"]["jobs"]["fixity"]
    assert fixity["cron"] == "15 4 * * *" and len(fixity["next"]) == 3
    assert all(t.endswith("04:15+08:00") for t in fixity["next"])
    assert policy["schedule"]["jobs"]["archive"] == {"cron": None, "next": []}
    assert [n["name"] for n in policy["naming"]] == ["acme"]
    assert policy["holds"]["released_by"] == ["legal", "leader"]
    assert policy["access"]["view"]["approvals"] == ["leader"]


def test_archive_targets_a_missing_directory_is_an_error_an_unplugged_disk_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shelf, usb = tmp_path / "shelf", tmp_path / "usb"
    targets = (
        f'[[archive.targets]]\nname = "shelf"\npath = "{shelf}"\n'
        f'[[archive.targets]]\nname = "usb"\npath = "{usb}"\nkind = "removable"\n'
    )
    conf = write(tmp_path, targets)
    with_ledger(tmp_path)
    code, _, err = check(conf, capsys)
    assert code == 78
    errors, warnings = err.split("errors:")[1], err.split("errors:")[0]
    assert f"[[archive.targets]] shelf: path: {shelf} is not there" in errors
    assert f"mkdir -m 0750 {shelf}" in errors
    assert f"[[archive.targets]] usb: path: {usb} is not there (unplugged?)" in warnings
    shelf.mkdir(mode=0o750)
    code, out, err = check(conf, capsys)
    assert code == 0, err
    assert f"[[archive.targets]] shelf: path: {shelf} is a writable directory" in out
