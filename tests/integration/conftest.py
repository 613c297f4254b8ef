"""Fixtures of the integration tier: an ingest context on the test station, and a
recorder of real recordings made with PyAV (fixtures/make_recorder.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dockd.alerts import AlertSink
from dockd.auth.roles import Role
from dockd.cli import main
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ledger.db import Ledger
from fixtures.make_recorder import Recorder, make_recorder
from tests.helpers.accounts import act_as, act_as_new
from tests.helpers.station import write_config


@pytest.fixture
def ctx(config: Config, ledger: Ledger, clock: FixedClock) -> Context:
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    return Context(config=config, ledger=ledger, clock=clock, alerts=alerts)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    """A vendor-A recorder tree (DCIM/100MEDIA, DEVICE.ID) with the damaged extras."""
    return make_recorder(tmp_path / "recorder", vendor="a")


Cli = Callable[..., tuple[int, str]]


@pytest.fixture
def station_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test station's config file, as $DOCKD_CONFIG (its ledger made by the first
    command that creates one)."""
    path = write_config(tmp_path)
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    return path


@pytest.fixture
def cli_as(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Cli]:
    """``cli_as(login, *roles)``: in-process ``dockd ARGS...`` on the station of
    $DOCKD_CONFIG (e.g. :func:`station_toml`), run by a new account with those roles as
    ``sudo dockd`` by them would; each call gives (exit code, stdout + stderr)."""

    def make(login: str, *roles: Role) -> Cli:
        act_as_new(monkeypatch, login, *roles)

        def run(*args: str) -> tuple[int, str]:
            code = main(list(args))
            out, err = capsys.readouterr()
            return code, out + err

        return run

    return make


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run_as(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``run_as(uid, *args)``: in-process ``dockd ARGS`` as ``sudo dockd ARGS`` by the
    account of ``uid`` (None: root without sudo); (exit code, stdout, stderr)."""

    def go(uid: int | None, *args: str) -> tuple[int, str, str]:
        act_as(monkeypatch, uid)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return go
