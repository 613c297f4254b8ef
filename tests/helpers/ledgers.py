"""The ledgers a test can run on, and a recorder registered in one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockd.alerts import AlertSink
from dockd.clock import FixedClock
from dockd.context import Context
from dockd.ingest.pipeline import run_ingest
from dockd.ledger import registry
from dockd.ledger.db import Ledger, open_ledger
from fixtures.make_recorder import Recorder
from tests.helpers.pgserver import PgServer
from tests.helpers.station import config_text, make_config

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


def ledger_url_of(request: pytest.FixtureRequest) -> str | None:
    """The ledger of a fixture parametrized with :data:`BACKENDS` (``indirect=True``):
    None for SQLite (the station's own file), a new PostgreSQL database otherwise."""
    if getattr(request, "param", "sqlite") != "postgresql":
        return None
    server: PgServer = request.getfixturevalue("pg_server")
    return server.new_database()


def docked_station(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rec: Recorder,
    *,
    ledger_url: str | None,
    extra: str = "",
    now: datetime,
) -> Context:
    """A station (its config as $DOCKD_CONFIG) whose ledger has ``rec`` registered and
    ingested; close ``ctx.ledger`` when done."""
    cfg = make_config(tmp_path, extra, ledger_url=ledger_url)
    clock = FixedClock(now)
    led = open_ledger(cfg.ledger.url)
    ctx = Context(cfg, led, clock, AlertSink(led, cfg.station.id, clock, cfg.alerts))
    register(led, clock, rec)
    assert run_ingest(ctx, rec.root).ok
    path = tmp_path / "dockd.toml"
    path.write_text(config_text(tmp_path, extra, ledger_url=ledger_url), "utf-8")
    monkeypatch.setenv("DOCKD_CONFIG", str(path))
    return ctx
