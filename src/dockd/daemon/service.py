"""``dockd run``: the composition root of the dock daemon.

Start, in order::

    the machine's daemon lock -> ledger -> clean the store's .incoming
    -> close sessions a crash left 'running' -> unmount what a crash left mounted
    -> automount watch -> dock status (the state file, the bays' LEDs and event
    hooks) -> session manager -> udev watcher (+ the devices already plugged in)
    -> sweep scheduler -> metrics endpoint ([metrics] listen) -> READY=1

then wait for SIGTERM/SIGINT, pinging systemd's watchdog while every part is
alive. Stop in the reverse order: no new docks, every session and sweep told to
stop (the current file is abandoned cleanly: no partial file, the session ends
'interrupted' with its counts), unmount (lazily when something else holds the
mount), scheduler, metrics endpoint, the state file marked stopped, the event
hooks (given what is left of the bound to finish what is queued), ledger.

The stop is bounded by ``dock.stop_timeout_s`` from the signal, whatever the
load and whatever hangs: each step gets only the time left, and a guard thread
ends the process with exit 1 at the bound (systemd restarts it) if a session
stuck in the kernel, or anything else, still holds it up.

One daemon per machine: ``dockd run`` holds an exclusive ``flock`` on
``<runtime dir>/dockd.lock`` (``$DOCKD_RUNTIME_DIR`` or ``/run/dockd``, never a
config key) for as long as it lives; a second one refuses to start
(:class:`~dockd.errors.AlreadyRunning`, naming the first one's PID).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import structlog

from dockd import __version__
from dockd.alerts import AlertSink
from dockd.alerts import delivery as alerts_mod
from dockd.clock import Clock, SystemClock
from dockd.config import Config
from dockd.context import Context
from dockd.daemon.metrics import start_metrics
from dockd.daemon.notify import notify, watchdog_interval
from dockd.daemon.scheduler import SweepScheduler
from dockd.dock.folderwatch import AutomountWatch
from dockd.dock.hooks import EventHooks
from dockd.dock.mounts import Mounter
from dockd.dock.sessions import SessionManager
from dockd.dock.status import StatusBoard
from dockd.dock.watcher import UdevWatcher
from dockd.errors import AlreadyRunning, DockdError
from dockd.ingest import recovery
from dockd.ledger.db import open_ledger
from dockd.runtime import FileLock, runtime_dir

log = structlog.get_logger("dockd.daemon.service")

LOCK_NAME = "dockd.lock"
#: Held from start to exit (the kernel drops it when the process dies, however).
_daemon_lock: FileLock | None = None


def take_daemon_lock() -> FileLock:
    """The machine's daemon lock, or :class:`AlreadyRunning` naming who holds it."""
    global _daemon_lock
    try:
        lock = FileLock(runtime_dir() / LOCK_NAME)
        took = lock.try_acquire("dockd run")
    except OSError as exc:
        raise DockdError(
            f"cannot take the daemon lock {LOCK_NAME} in the runtime directory: {exc}; run "
            "dockd run as root, or set $DOCKD_RUNTIME_DIR to a directory it may write"
        ) from exc
    if not took:
        pid = lock.holder()
        who = f"PID {pid}" if pid else "another process (its PID not written yet)"
        raise AlreadyRunning(
            f"another dockd run is already running on this machine: {who} holds "
            f"{lock.path}. One daemon docks every recorder here; stop that one first "
            f"(systemctl stop dockd, or kill {pid or '<pid>'}) rather than starting a second"
        )
    _daemon_lock = lock
    return lock


class _Signals:
    """SIGTERM/SIGINT set an event the main thread waits on, and note when."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: str | None = None
        self.at: float | None = None  # time.monotonic() of the first stop signal
        self.stopped = threading.Event()  # the orderly stop is done: the guard stands down

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.at is None:
            self.at = time.monotonic()
            self.received = signal.Signals(signum).name
        self.stop.set()


LAST_WORDS_S = 0.2  # of the stop bound, left to the guard for its log line


def _last_words(timeout: float) -> None:
    log.error("dockd did not stop in time; exiting now", timeout_s=timeout)
    sys.stderr.flush()


def _guard_stop(signals: _Signals, timeout: float) -> None:
    """A daemon thread: ``timeout`` s after the stop signal, end the process (exit 1).

    The orderly stop below bounds every step; this is the bound that holds even
    when something does not (a thread stuck in the kernel, a sweep that never
    looks at its stop event, the interpreter's exit joining a thread).
    """

    def guard() -> None:
        signals.stop.wait()
        at = signals.at if signals.at is not None else time.monotonic()
        if signals.stopped.wait(max(0.0, at + timeout - time.monotonic() - LAST_WORDS_S)):
            return  # the orderly stop finished in time: nothing to end
        # The log line is written from a thread of its own: a stuck writer holding the
        # log stream must not keep the process alive either.
        last = threading.Thread(target=_last_words, args=(timeout,), daemon=True)
        last.start()
        last.join(max(0.0, at + timeout - time.monotonic()))
        os._exit(1)

    threading.Thread(target=guard, name="dockd-stop-guard", daemon=True).start()


def run(config: Config, *, clock: Clock | None = None) -> int:
    """Run the dock daemon until SIGTERM/SIGINT; returns the exit code."""
    take_daemon_lock()
    clock = clock or SystemClock()
    cfg = config.dock
    signals = _Signals()
    signals.install()
    _guard_stop(signals, cfg.stop_timeout_s)
    log.info(
        "dockd starting",
        version=__version__,
        station=config.station.id,
        pid=os.getpid(),
        store=str(config.store.root),
        max_parallel=cfg.max_parallel,
    )
    ledger = open_ledger(config.ledger.url, group=config.ledger.group)
    alerts = AlertSink(ledger, config.station.id, clock, config.alerts)
    ctx = Context(config=config, ledger=ledger, clock=clock, alerts=alerts, actor="dockd")
    mounter = Mounter(cfg)
    recovery.recover(ctx, daemon_roots=(mounter.root, *cfg.automount_roots))
    for stale in mounter.cleanup_stale():
        log.warning("mount left by a crash taken down", mountpoint=str(stale))

    automount = AutomountWatch(cfg.automount_roots)
    hooks = EventHooks(
        cfg.on_event, cfg.on_event_timeout_s, {b.name: b.led for b in cfg.bay if b.led}
    )
    board = StatusBoard(
        cfg.bay,
        path=cfg.status_file,
        tz=config.station.tz,
        station=config.station.id,
        low_free_percent=cfg.low_free_percent,
        publish=hooks.publish,
    )
    manager = SessionManager(ctx, mounter, automount, board)
    watcher = UdevWatcher(cfg, manager.submit)
    scheduler = SweepScheduler(config, ledger, clock, alerts)
    started: list[Callable[[], object]] = []
    try:
        automount.start()
        started.append(automount.stop)
        hooks.start()
        board.start()
        started.append(board.close)
        started.append(lambda: hooks.stop(2.0))
        manager.start()
        started.append(lambda: manager.stop(cfg.stop_timeout_s))
        watcher.start()
        started.append(watcher.stop)
        present = watcher.coldplug()
        for ev in present:
            manager.submit(ev)
        scheduler.start()
        started.append(lambda: scheduler.shutdown(wait=False))
        metrics = start_metrics(config, ledger)
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
    at = signals.at if signals.at is not None else time.monotonic()
    deadline = at + cfg.stop_timeout_s
    # What the sessions may use; the rest is for the scheduler, the ledger and the exit.
    sessions_by = deadline - min(5.0, 0.2 * cfg.stop_timeout_s)

    def left(until: float) -> float:
        return max(0.0, until - time.monotonic())

    alerts_mod.notify_deadline(deadline - 1.0)  # a slow notify command must not hold the stop
    scheduler.stop.set()  # sweeps wind down alongside the sessions
    watcher.stop(timeout=min(5.0, left(sessions_by)))
    clean = manager.stop(left(sessions_by))
    if not clean:
        log.error(
            "sessions did not stop in time; abandoning them",
            timeout_s=cfg.stop_timeout_s,
            sessions=[d.session_id for d in manager.running()],
        )
    sweeps_done = scheduler.shutdown(wait=True, timeout=left(deadline - 1.0))
    automount.stop(timeout=min(5.0, left(deadline - 1.0)))
    if metrics is not None:
        metrics.stop(timeout=min(2.0, left(deadline - 1.0)))
    board.close()
    hooks.stop(timeout=min(5.0, left(deadline - 1.0)))
    if not clean:
        mounter.cleanup_stale()
    ledger.close()
    log.info("dockd stopped", clean=clean, sweeps_stopped=sweeps_done)
    if not (clean and sweeps_done):
        sys.stderr.flush()
        os._exit(1)  # threads stuck in the kernel would keep the interpreter alive
    signals.stopped.set()
    return 0
