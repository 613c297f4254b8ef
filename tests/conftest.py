"""Fixtures and hooks of every tier: a thread-leak check, structlog as the run started, a
runtime directory per test, a fixed clock, the test station's config on a real SQLite
ledger (or a real PostgreSQL one), and the PostgreSQL server behind it.

What tests import (need, the station's config, register, the servers and devices) is
in :mod:`tests.helpers`; no test imports a conftest.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.ledger.db import Ledger, open_ledger
from tests.helpers.accounts import act_as
from tests.helpers.pgserver import PgServer, pg_bindir, running_server
from tests.helpers.skips import need
from tests.helpers.station import NOW, make_config


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
def _structlog_config_restored() -> Iterator[None]:
    """structlog's configuration belongs to the process: a ``dockd`` command run in-process
    sets it from its config (``[logging] level = "error"`` drops warnings). Each test
    starts from the configuration the run started with, whatever ran before it, and with
    no log context bound by it (a session's id and officer, bound per thread)."""
    saved = structlog.get_config()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()


@pytest.fixture(autouse=True)
def _runtime_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own runtime directory (recorder and daemon locks), so a test never
    waits on, or is refused by, another run's lock on this machine."""
    path = tmp_path_factory.mktemp("run")
    monkeypatch.setenv("DOCKD_RUNTIME_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _root_without_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process ``dockd`` runs as root without sudo (the ``system`` account, an admin),
    as automation does, whoever runs pytest; a test that needs a person (a hold, a tag)
    acts as one with :func:`tests.helpers.accounts.act_as`."""
    act_as(monkeypatch, None)


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


@pytest.fixture
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    """SQLite by default; ``@pytest.mark.parametrize("config", BACKENDS, indirect=True)``
    (``tests.helpers.ledgers.BACKENDS``) runs a test on both ledgers."""
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
