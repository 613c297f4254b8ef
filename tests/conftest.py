"""Shared test fixtures: a real SQLite ledger, a real store on disk, a fixed clock,
and real recordings made with PyAV (fixtures/make_recorder.py).

Tests that need root, loop devices, FUSE, udevd or PostgreSQL call
:func:`need` with what they need: outside CI a missing tool skips the test with
the reason; under ``CI=true`` it fails, because CI must run every test.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config, parse_config
from dockd.context import Context
from dockd.ledger import registry
from dockd.ledger.db import Ledger, open_ledger
from make_recorder import Recorder, make_recorder
from pgserver import PgServer, pg_bindir, running_server

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
NOW = datetime(2026, 3, 16, 2, 0, tzinfo=UTC)  # the day after the fixture recordings


def need(*, root: bool = False, tools: tuple[str, ...] = (), why: str = "") -> None:
    """Skip (outside CI) or fail (under CI=true) when the test's real components are missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    problems = []
    if root and os.geteuid() != 0:
        problems.append("root")
    if missing:
        problems.append("tools " + ", ".join(missing))
    if not problems:
        return
    reason = f"needs {' and '.join(problems)}{': ' + why if why else ''}"
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: .ci/run must install these; skipping is not allowed)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test that leaves a thread running fails: a daemon must stop what it starts."""
    before = set(threading.enumerate())
    yield
    deadline = threading.Event()
    for t in set(threading.enumerate()) - before:
        t.join(timeout=5)
    leaked = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    deadline.set()
    assert not leaked, f"test leaked threads: {leaked}"


@pytest.fixture(autouse=True)
def _runtime_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own runtime directory (recorder and daemon locks), so a test never
    waits on, or is refused by, another run's lock on this machine."""
    path = tmp_path_factory.mktemp("run")
    monkeypatch.setenv("DOCKD_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole run (a fresh database per test)."""
    if pg_bindir() is None:
        need(
            tools=("pg_ctl",),
            why="PostgreSQL ledger tests start a real server (Debian package postgresql)",
        )
    with running_server() as server:
        yield server


def config_text(
    tmp_path: Path, extra: str = "", *, ledger_url: str | None = None, unit: str = "Test Station"
) -> str:
    """The test station's TOML: store, quarantine and SQLite ledger under ``tmp_path``."""
    url = ledger_url or f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    return f"""
[station]
unit = "{unit}"
id = "st-test"
timezone = "Asia/Shanghai"

[store]
root = "{tmp_path / "store"}"
quarantine = "{tmp_path / "quarantine"}"

[ledger]
url = "{url}"
{extra}
"""


def make_config(tmp_path: Path, extra: str = "", *, ledger_url: str | None = None) -> Config:
    text = config_text(tmp_path, extra, ledger_url=ledger_url)
    return parse_config(text, source=str(tmp_path / "dockd.toml"), base=tmp_path)


def write_config(tmp_path: Path, extra: str = "", *, unit: str = "Test Station") -> Path:
    """The same station as the ``config`` fixture, as a file for CLI tests."""
    path = tmp_path / "dockd.toml"
    path.write_text(config_text(tmp_path, extra, unit=unit), encoding="utf-8")
    return path


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """SQLite by default; ``@pytest.mark.parametrize("config", BACKENDS, indirect=True)``
    runs a test on both ledgers."""
    backend = getattr(request, "param", "sqlite")
    if backend == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        return make_config(tmp_path, ledger_url=server.new_database())
    return make_config(tmp_path)


@pytest.fixture
def ledger(config: Config) -> Iterator[Ledger]:
    led = open_ledger(config.ledger.url)
    yield led
    led.close()


@pytest.fixture
def ctx(config: Config, ledger: Ledger, clock: FixedClock) -> Context:
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    return Context(config=config, ledger=ledger, clock=clock, alerts=alerts)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    """A vendor-A recorder tree (DCIM/100MEDIA, DEVICE.ID) with the damaged extras."""
    return make_recorder(tmp_path / "recorder", vendor="a")


def register(ledger: Ledger, clock: FixedClock, rec: Recorder, *, assign: bool = True) -> None:
    """Register the recorder's device (and its officer, assigned since 2026-01-01)."""
    with ledger.session() as s:
        registry.add_device(
            s,
            number=rec.device_number,
            serial=rec.serial,
            brand="Test",
            model="BWC-1",
            at=datetime(2025, 12, 1, tzinfo=UTC),
            station="st-test",
            actor="admin",
        )
        registry.add_officer(
            s, badge=rec.badge, name="Zhang Wei", at=clock.now(), station="st-test", actor="admin"
        )
        if assign:
            registry.assign(
                s,
                device_number=rec.device_number,
                badge=rec.badge,
                valid_from=datetime(2026, 1, 1, tzinfo=UTC),
                valid_until=None,
                at=clock.now(),
                station="st-test",
                actor="admin",
            )
