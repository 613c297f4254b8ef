"""What an ingest is given: config, ledger, clock, alerts and who acts. Nothing is reached for."""

from __future__ import annotations

from dataclasses import dataclass

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.ledger.db import Ledger


@dataclass(frozen=True)
class IngestContext:
    """Everything an ingest needs, passed in: nothing is reached for."""

    config: Config
    ledger: Ledger
    clock: Clock
    alerts: AlertSink
    actor: str = "dockd"
