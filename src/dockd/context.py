"""What a stage is given: config, ledger, clock, alerts, who acts and when to stop.

One ``Context`` for the ingest pipeline, the dock's sessions and every sweep: each
is handed one, nothing is reached for. Tests build one with a fixed clock.

A long run (fixity, archive, retention, an export) tells its :class:`Progress` how far
it is. The default tells nobody (the daemon, a pipe, JSON output); ``dockd.cli.progress``
gives a person at a terminal a bar with files, bytes, rate and ETA.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from dockd.alerts import AlertSink
from dockd.clock import Clock
from dockd.config import Config
from dockd.ledger.db import Ledger


class Progress(Protocol):
    """How far a long run is: ``begin`` a phase of ``files`` files (``None``: not known
    in advance) and ``nbytes`` bytes (``None``: not known), then ``step`` once per file
    with the bytes it read or wrote. Called from the run's own thread only."""

    def begin(self, what: str, files: int | None, nbytes: int | None = None) -> None: ...

    def step(self, nbytes: int = 0) -> None: ...


class NoProgress:
    """The :class:`Progress` of every run nobody watches: it does nothing."""

    def begin(self, what: str, files: int | None, nbytes: int | None = None) -> None:
        return None

    def step(self, nbytes: int = 0) -> None:
        return None


NO_PROGRESS: Progress = NoProgress()


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
    progress: Progress = NO_PROGRESS

    def check_stop(self) -> None:
        """Raise :class:`Stopped` when a stop was requested: call it between two files."""
        if self.stop.is_set():
            raise Stopped("stop requested")
