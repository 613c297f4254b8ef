"""Fixtures of the system tier: a dock environment (udevd, loop devices, the daemon) and
the end of any ``dockd`` process a failed test left running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from tests.helpers.blockdev import DockEnv, dock_env
from tests.helpers.cli_station import kill_started


@pytest.fixture(autouse=True)
def _no_paused_ingest_left() -> Iterator[None]:
    """A test that fails before it kills its paused `dockd ingest` must not leave it
    running (paused for ever, holding its recorder's lock)."""
    yield
    kill_started()


@pytest.fixture
def env(tmp_path: Path, clock: FixedClock) -> Iterator[DockEnv]:
    with dock_env(tmp_path, clock) as e:
        yield e
