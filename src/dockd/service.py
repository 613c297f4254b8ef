"""``dockd run``: the composition root of the dock daemon.

Start, in order::

    ledger -> clean the store's .incoming -> close sessions a crash left 'running'
    -> unmount what a crash left mounted -> automount watch -> session manager
    -> udev watcher (+ the devices already plugged in) -> sweep scheduler -> READY=1

then wait for SIGTERM/SIGINT, pinging systemd's watchdog while every part is
alive. Stop in the reverse order: no new docks, every session told to stop (the
current file is abandoned cleanly: no partial file, the session ends
'interrupted' with its counts), unmount, scheduler, ledger. The stop is bounded
by ``dock.stop_timeout_s``; a session stuck in the kernel past it is abandoned
and the process exits non-zero so systemd restarts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog
from sqlalchemy import select

from dockd import __version__, store
from dockd.alerts import AlertSink
from dockd.clock import Clock, SystemClock
from dockd.config import Config
from dockd.dock.folderwatch import AutomountWatch
from dockd.dock.mounts import Mounter
from dockd.dock.notify import notify, watchdog_interval
from dockd.dock.sessions import SessionManager
from dockd.dock.watcher import UdevWatcher
from dockd.ingest.pipeline import IngestContext
from dockd.ledger import audit
from dockd.ledger.db import open_ledger
from dockd.ledger.models import DockSession
from dockd.scheduler import SweepScheduler

log = structlog.get_logger("dockd.service")


def recover_sessions(ctx: IngestContext, roots: tuple[Path, ...]) -> list[int]:
    """Mark dock sessions a crashed dockd left 'running' as 'interrupted' (audit + alert).

    Only sessions whose source lies under the daemon's own mount directory or an
    automount root are the daemon's; a ``dockd ingest`` run by hand at the same
    time keeps its 'running' session.
    """
    now = ctx.clock.now()
    recovered: list[int] = []
    with ctx.ledger.session() as s:
        rows = s.scalars(
            select(DockSession)
            .where(DockSession.outcome == "running")
            .where(DockSession.station == ctx.config.station.id)
            .where(DockSession.started_at <= now)
            .order_by(DockSession.id)
        )
        for row in rows:
            if not any(Path(row.source).is_relative_to(r) for r in roots):
                continue
            row.outcome, row.ended_at = "interrupted", now
            note = (
                "dockd stopped (crash, kill or power loss) while this session ran; "
                "dock the recorder again to take the files not yet stored"
            )
            row.notes = f"{row.notes}; {note}" if row.notes else note
            audit.record(
                s,
                at=now,
                station=row.station,
                actor=ctx.actor,
                action="session.recovered",
                subject_type="session",
                subject_id=row.id,
                details={
                    "outcome": "interrupted",
                    "device": row.device_ref,
                    "seen": row.files_seen,
                    "stored": row.files_stored,
                    "present": row.files_present,
                    "failed": row.files_failed,
                },
            )
            ctx.alerts.raise_alert(
                "ingest.interrupted",
                row.device_ref or row.source,
                f"dock session {row.id} of recorder {row.device_ref} was cut short when dockd "
                f"stopped unexpectedly, after {row.files_stored} stored / {row.files_present} "
                "already present; dock the recorder again to take the rest",
                severity="warning",
                details={"session_id": row.id},
                session=s,
            )
            recovered.append(row.id)
    for sid in recovered:
        log.warning("session left running by a crash marked interrupted", session_id=sid)
    return recovered


class _Signals:
    """SIGTERM/SIGINT set an event the main thread waits on."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        self.stop.set()


def run(config: Config, *, clock: Clock | None = None) -> int:
    """Run the dock daemon until SIGTERM/SIGINT; returns the exit code."""
    clock = clock or SystemClock()
    cfg = config.dock
    signals = _Signals()
    signals.install()
    log.info(
        "dockd starting",
        version=__version__,
        station=config.station.id,
        pid=os.getpid(),
        store=str(config.store.root),
        max_parallel=cfg.max_parallel,
    )
    ledger = open_ledger(config.ledger.url)
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    ctx = IngestContext(config=config, ledger=ledger, clock=clock, alerts=alerts, actor="dockd")
    mounter = Mounter(cfg)
    for root in (config.store.root, config.store.quarantine_root):
        for part in store.clean_incoming(root):
            log.warning("temporary file left by a crash removed", path=str(part))
    recover_sessions(ctx, (mounter.root, *cfg.automount_roots))
    for stale in mounter.cleanup_stale():
        log.warning("mount left by a crash taken down", mountpoint=str(stale))

    automount = AutomountWatch(cfg.automount_roots)
    manager = SessionManager(ctx, mounter, automount)
    watcher = UdevWatcher(cfg, manager.submit)
    scheduler = SweepScheduler(config, ledger, clock, alerts)
    started: list[Callable[[], object]] = []
    try:
        automount.start()
        started.append(automount.stop)
        manager.start()
        started.append(lambda: manager.stop(cfg.stop_timeout_s))
        watcher.start()
        started.append(watcher.stop)
        present = watcher.coldplug()
        for ev in present:
            manager.submit(ev)
        scheduler.start()
    except BaseException:
        for undo in reversed(started):
            with contextlib.suppress(Exception):
                undo()
        ledger.close()
        raise

    notify(
        f"READY=1\nSTATUS=watching for recorders ({watcher.source} events)\nMAINPID={os.getpid()}"
    )
    log.info("dockd ready", source=watcher.source, devices_present=len(present))
    interval = watchdog_interval()
    while not signals.stop.wait(interval if interval else 3600):
        if watcher.alive and manager.alive:
            notify("WATCHDOG=1")
        else:
            log.error("a dock thread died: not pinging the watchdog, systemd will restart dockd")

    notify("STOPPING=1\nSTATUS=stopping")
    log.info("dockd stopping", signal=signals.received, sessions=len(manager.running()))
    watcher.stop()
    clean = manager.stop(cfg.stop_timeout_s)
    if not clean:
        log.error(
            "sessions did not stop in time; abandoning them",
            timeout_s=cfg.stop_timeout_s,
            sessions=[d.session_id for d in manager.running()],
        )
    scheduler.shutdown(wait=True)
    automount.stop()
    if not clean:
        mounter.cleanup_stale()
    ledger.close()
    log.info("dockd stopped", clean=clean)
    if not clean:
        sys.stderr.flush()
        os._exit(1)  # threads stuck in the kernel would keep the interpreter alive
    return 0
