"""The ledgers a test can run on, and a recorder registered in one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dockd.clock import FixedClock
from dockd.ledger import registry
from dockd.ledger.db import Ledger
from fixtures.make_recorder import Recorder

# ``@pytest.mark.parametrize("config", BACKENDS, indirect=True)`` runs a test on both.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def register(
    ledger: Ledger,
    clock: FixedClock,
    rec: Recorder,
    *,
    assign: bool = True,
    since: datetime | None = None,
) -> None:
    """Register the recorder's device on 2025-12-01 (and its officer, assigned since
    2026-01-01); ``since``: registered and assigned from then instead."""
    with ledger.session() as s:
        registry.add_device(
            s,
            number=rec.device_number,
            serial=rec.serial,
            brand="Test",
            model="BWC-1",
            at=since or datetime(2025, 12, 1, tzinfo=UTC),
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
                valid_from=since or datetime(2026, 1, 1, tzinfo=UTC),
                valid_until=None,
                at=clock.now(),
                station="st-test",
                actor="admin",
            )
