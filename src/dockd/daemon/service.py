"""``dockd run``: the composition root of the dock daemon.

Start, in order::

    the machine's daemon lock -> ledger -> clean the store's .incoming
    -> close sessions a crash left 'running' -> unmount what a crash left mounted
    -> automount watch -> dock status (the state file, the bays' LEDs and event
    hooks) -> session manager -> udev watcher (+ the devices already plugged in)
    -> sweep scheduler -> metrics endpoint ([metrics] listen) -> READY=1

then wait for SIGTERM/SIGINT, pinging systemd's watchdog while every part is
alive. SIGHUP (``systemctl reload dockd``) reloads the config file
(:func:`reload_config`): new docks and the next sweeps use the new one, docks and
sweeps in progress keep the Context they started with; a file that fails the
checks, or changes what cannot change while running, is refused with a
``config.reload_failed`` alert and the daemon goes on with the old one.

Stop in the reverse order: no new docks, every session and sweep told to stop
(the current file is abandoned cleanly: no partial file, the session ends
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
from collections.abc import Callable, Sequence
from functools import partial
from types import FrameType
from typing import Protocol

import structlog

from dockd import __version__
from dockd.alerts import AlertSink
from dockd.alerts import delivery as alerts_mod
from dockd.clock import Clock, SystemClock
from dockd.config import Config, load_config
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
from dockd.errors import AlreadyRunning, ConfigError, DockdError
from dockd.ingest import recovery
from dockd.ledger.db import Ledger, open_ledger
from dockd.policy.diff import Change, key_changes, not_live
from dockd.runtime import LOCK_NAME, FileLock, runtime_dir

log = structlog.get_logger("dockd.daemon.service")

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
    """SIGTERM/SIGINT set an event the main thread waits on, and note when; SIGHUP asks
    for a reload. Either wakes the main thread (``wake``)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hup = threading.Event()
        self.wake = threading.Event()
        self.received: str | None = None
        self.at: float | None = None  # time.monotonic() of the first stop signal
        self.stopped = threading.Event()  # the orderly stop is done: the guard stands down

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        signal.signal(signal.SIGHUP, self._reload)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.at is None:
            self.at = time.monotonic()
            self.received = signal.Signals(signum).name
        self.stop.set()
        self.wake.set()

    def _reload(self, _signum: int, _frame: FrameType | None) -> None:
        self.hup.set()
        self.wake.set()


class HoldsContext(Protocol):
    """What hands a Context to the work it starts (the session manager): a reload
    replaces it for the work started after."""

    ctx: Context


def _said(c: Change) -> str:
    return f"{c.key}: {c.old!r} -> {c.new!r}"


def reload_config(
    current: Config,
    load: Callable[[], Config],
    *,
    ledger: Ledger,
    clock: Clock,
    alerts: AlertSink,
    holders: Sequence[HoldsContext] = (),
    scheduler: SweepScheduler | None = None,
) -> tuple[Config, AlertSink]:
    """Load the config again and put it in force; returns the config and alert sink now
    in force (the new ones, or ``current`` and ``alerts`` when it was refused).

    Refused, with a ``config.reload_failed`` alert naming the key and line: a file that
    fails the checks of ``dockd config check``, and a change of what a running daemon
    cannot change (:data:`dockd.policy.diff.NOT_LIVE`: the ledger, the store, the
    metrics endpoint, the docks' devices and bays, logging, the station's id and zone;
    ``systemctl restart dockd`` applies those). Work in progress is never touched: a
    dock or a sweep goes on with the Context it was handed when it started.
    """
    where = str(current.source) if current.source else "the config file"
    try:
        new = load()
    except ConfigError as exc:
        log.error("config reload failed; keeping the running config", problems=exc.problems)
        _reload_failed(
            alerts,
            exc.path,
            f"the config reloaded from {exc.path} was refused, dockd goes on with the one "
            f"it runs: {'; '.join(exc.problems)}. Fix it (`dockd config check`), then "
            "`systemctl reload dockd`",
            {"problems": exc.problems},
        )
        return current, alerts
    changes = key_changes(current, new)
    fixed = not_live(changes)
    if fixed:
        keys = ", ".join(c.key for c in fixed)
        log.error(
            "config reload refused: keys that cannot change while running",
            keys=[c.key for c in fixed],
        )
        _reload_failed(
            alerts,
            where,
            f"the config reloaded from {where} changes what cannot change while dockd "
            f"runs: {keys}; dockd goes on with the config it runs. `systemctl restart "
            "dockd` applies them (between docks), or put the old values back",
            {"keys": [_said(c) for c in fixed]},
        )
        return current, alerts
    new_alerts = AlertSink(ledger, new.station.id, clock, new.alerts)
    ctx = Context(config=new, ledger=ledger, clock=clock, alerts=new_alerts, actor="dockd")
    for holder in holders:
        holder.ctx = ctx
    if scheduler is not None:
        scheduler.reload(new, new_alerts)
    log.info("config reloaded", source=str(new.source), changed=[_said(c) for c in changes])
    return new, new_alerts


def _reload_failed(
    alerts: AlertSink, subject: str, message: str, details: dict[str, object]
) -> None:
    try:
        alerts.raise_alert(
            "config.reload_failed", subject, message, severity="critical", details=details
        )
    except Exception:
        log.exception("could not even raise the alert", kind="config.reload_failed")


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
    zone = (config.station.id, config.station.timezone)  # for the SQL views' local times
    ledger = open_ledger(config.ledger.url, group=config.ledger.group, station_zone=zone)
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
    live, live_alerts = config, alerts
    while True:
        signals.wake.wait(interval if interval else 3600)
        signals.wake.clear()
        if signals.stop.is_set():
            break
        if signals.hup.is_set():
            signals.hup.clear()
            notify("RELOADING=1")
            try:
                live, live_alerts = reload_config(
                    live,
                    partial(load_config, live.source),
                    ledger=ledger,
                    clock=clock,
                    alerts=live_alerts,
                    holders=(manager,),
                    scheduler=scheduler,
                )
            except Exception:  # a reload must never take the daemon down
                log.exception("config reload failed")
            notify("READY=1")
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
