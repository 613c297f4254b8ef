"""Fixtures of the integration tier: an ingest context on the test station, and a
recorder of real recordings made with PyAV (fixtures/make_recorder.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.context import Context
from dockd.ledger.db import Ledger
from fixtures.make_recorder import Recorder, make_recorder


@pytest.fixture
def ctx(config: Config, ledger: Ledger, clock: FixedClock) -> Context:
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    return Context(config=config, ledger=ledger, clock=clock, alerts=alerts)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    """A vendor-A recorder tree (DCIM/100MEDIA, DEVICE.ID) with the damaged extras."""
    return make_recorder(tmp_path / "recorder", vendor="a")
