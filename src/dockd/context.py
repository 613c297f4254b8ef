"""What a stage is given: config, ledger, clock, alerts, who acts and when to stop.

One ``Context`` for the ingest pipeline, the dock's sessions and every sweep: each
is handed one, nothing is reached for. Tests build one with a fixed clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.ledger.db import Ledger


class Stopped(Exception):
    """A stop was requested (shutdown) and the work stopped between two files."""


@dataclass(frozen=True)
class Context:
    """Everything a stage needs, passed in: nothing is reached for."""

    config: Config
    ledger: Ledger
    clock: Clock
    alerts: AlertSink
    actor: str = "dockd"
    stop: threading.Event = field(default_factory=threading.Event)

    def check_stop(self) -> None:
        """Raise :class:`Stopped` when a stop was requested: call it between two files."""
        if self.stop.is_set():
            raise Stopped("stop requested")
