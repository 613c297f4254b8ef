"""One ingest per recorder: the lock between processes on this machine, and across
stations on one PostgreSQL ledger; and the identity rules that name the recorder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dockd.config import Config
from dockd.errors import RecorderBusy
from dockd.ingest.identify import parse_id_file
from dockd.ingest.lock import RecorderLock
from dockd.ingest.names import display
from dockd.ledger.db import Ledger, open_ledger
from dockd.store.paths import safe_component
from tests.helpers.ledgers import BACKENDS
from tests.helpers.pgserver import PgServer


@pytest.fixture(autouse=True)
def _runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    run = tmp_path / "run"
    monkeypatch.setenv("DOCKD_RUNTIME_DIR", str(run))
    return run


@pytest.mark.parametrize("config", BACKENDS, indirect=True)
def test_a_second_holder_of_one_recorder_is_refused_with_the_first_ones_pid(
    config: Config, ledger: Ledger
) -> None:
    first = RecorderLock(ledger, "BWC-0001")
    assert first.acquire(wait=False)
    try:
        with pytest.raises(RecorderBusy, match=r"BWC-0001 is being ingested .*PID \d+") as exc:
            RecorderLock(ledger, "BWC-0001").acquire(wait=False)
        assert exc.value.exit_code == 73
        other = RecorderLock(ledger, "BWC-0002")  # another recorder is not held up
        assert other.acquire(wait=False)
        other.release()
    finally:
        first.release()
    again = RecorderLock(ledger, "BWC-0001")
    assert again.acquire(wait=False)
    again.release()


def test_a_waiter_gets_the_recorder_when_the_holder_lets_go(ledger: Ledger) -> None:
    first = RecorderLock(ledger, "BWC-0001")
    assert first.acquire(wait=False)
    got = threading.Event()
    second = RecorderLock(ledger, "BWC-0001")

    def wait_for_it() -> None:
        if second.acquire(wait=True):
            got.set()

    t = threading.Thread(target=wait_for_it)
    t.start()
    try:
        assert not got.is_set()  # still held: nobody can have it yet
        first.release()
        t.join(timeout=30)
        assert got.is_set()
    finally:
        first.release()
        t.join(timeout=30)
        second.release()


def test_a_stop_ends_the_wait_without_the_lock(ledger: Ledger) -> None:
    first = RecorderLock(ledger, "BWC-0001")
    assert first.acquire(wait=False)
    stop = threading.Event()
    stop.set()
    try:
        assert RecorderLock(ledger, "BWC-0001").acquire(wait=True, stop=stop) is False
    finally:
        first.release()


@pytest.mark.postgres
def test_two_stations_on_one_postgresql_ledger_do_not_take_one_recorder_at_once(
    config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_server: object,
) -> None:

    assert isinstance(pg_server, PgServer)
    url = pg_server.new_database()
    a, b = open_ledger(url), open_ledger(url)
    try:
        first = RecorderLock(a, "BWC-0001")
        assert first.acquire(wait=False)
        # Another station: another machine, so another runtime directory.
        monkeypatch.setenv("DOCKD_RUNTIME_DIR", str(tmp_path / "run-station-2"))
        with pytest.raises(RecorderBusy, match="another station"):
            RecorderLock(b, "BWC-0001").acquire(wait=False)
        first.release()
        second = RecorderLock(b, "BWC-0001")
        assert second.acquire(wait=False)
        second.release()
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- names and ID files


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("执法记录/录像0001.mp4".encode("gbk"), "执法记录/录像0001.mp4"),
        ("执法记录/录像0001.mp4".encode(), "执法记录/录像0001.mp4"),
        (b"DCIM/\xff\xfeclip.mp4", "DCIM/\\xff\\xfeclip.mp4"),
        (b"plain.mp4", "plain.mp4"),
    ],
)
def test_a_name_is_shown_as_people_read_it(raw: bytes, shown: str) -> None:
    assert display(raw) == shown
    stored = safe_component(display(raw).rsplit("/", 1)[-1])
    stored.encode("utf-8")  # always valid UTF-8 in the store
    assert stored.endswith(".mp4")


@pytest.mark.parametrize(
    ("name", "stored"),
    [("..mp4", "_.mp4"), (".hidden.mp4", "_hidden.mp4"), ("..", "unnamed"), ("a/b.mp4", "a_b.mp4")],
)
def test_leading_dots_never_hide_a_file_nor_lose_its_extension(name: str, stored: str) -> None:
    assert safe_component(name) == stored


def test_an_id_file_value_never_carries_a_nul_or_control_characters() -> None:
    parsed = parse_id_file(b"serial = SN\x00123\ndevice=\x01\x02\nid = BWC-7\n")
    assert parsed == {"serial": "SN123", "device": "BWC-7"}
