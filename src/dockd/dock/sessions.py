"""Dock sessions: one per docked recorder, up to ``dock.max_parallel`` at once.

The watcher's events arrive on a queue; a dispatcher thread decides, one event
at a time, what each means::

    add/change with a filesystem  -> a new dock (unless this medium is already docked)
    remove / change without one   -> the recorder is gone: stop its session

and a pool of session threads runs each dock through its stages::

    wait for the slot (same device, same volume) -> find or make the mount
    -> run_ingest (the same core ingest as ``dockd ingest``) -> device check
    -> optional wipe -> unmount

One device is never ingested twice at once: a dock waits until the previous
dock of the same device slot (or of the same filesystem seen through another
path) has finished. A medium that has been taken is not taken again while it
stays docked; it is re-docked once removed and plugged in again.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from dockd import store
from dockd.config.dock import DockConfig
from dockd.context import Context
from dockd.dock import checks, wipe
from dockd.dock.folderwatch import AutomountWatch
from dockd.dock.match import BlockEvent, dockable, first_match
from dockd.dock.mounts import Mount, MountAbandoned, Mounter
from dockd.dock.status import StatusBoard, failure_reason
from dockd.dock.watcher import complete_event, superseded
from dockd.errors import DockdError
from dockd.ingest.outcome import FileOutcome, FileStatus, SessionOutcome, SessionResult
from dockd.ingest.pipeline import run_ingest
from dockd.ingest.session import session_alert
from dockd.ledger import registry
from dockd.ledger.models import DockSession

log = structlog.get_logger("dockd.dock")


@dataclass(eq=False)
class Dock:
    """One docking of one medium, from the udev event to the unmount."""

    ev: BlockEvent
    seq: int
    waits_for: list[Dock] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    session_id: int | None = None
    device: str | None = None
    officer: str | None = None
    outcome: SessionOutcome | None = None
    reason: str | None = None  # why not every file was taken (None: all were, or none tried)
    unmounted: bool = False  # the recorder's filesystem is mounted nowhere any more
    future: Future[None] | None = None
    seen_at: datetime | None = None  # when the recorder arrived (its clock is measured by it)
    # The config it docked under: a reload (SIGHUP) applies to the next docks, not this one.
    ctx: Context | None = None

    def same_volume(self, ev: BlockEvent) -> bool:
        a, b = self.ev.volume, ev.volume
        return a.fs_uuid is not None and (a.fs_uuid, a.fs_label, a.serial) == (
            b.fs_uuid,
            b.fs_label,
            b.serial,
        )


class _Progress:
    """Logs the first bytes copied (the bench's latency); applies the rate limit; tells the board.

    The limit (``dock.copy_limit_mb_s``) holds the session back after each chunk
    until its average rate is under the limit; the wait ends at once on a stop.
    """

    def __init__(self, dock: Dock, limit_mb_s: float, board: StatusBoard | None = None) -> None:
        self._dock = dock
        self._board = board or StatusBoard()
        self._limit = limit_mb_s * 1_000_000
        self._t0: float | None = None
        self._bytes = 0

    def start(self, files: int, total_bytes: int) -> None:
        log.info("copy starting", files=files, total_bytes=total_bytes)
        self._board.copying(self._dock.seq, files, total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._t0 is None:
            self._t0 = time.monotonic()
            log.info(
                "first bytes copied",
                since_event_s=round(self._t0 - self._dock.ev.received, 4),
                event_at=self._dock.ev.received_wall,
            )
        self._bytes += nbytes
        self._board.advance(self._dock.seq, nbytes)
        if self._limit:
            ahead = self._bytes / self._limit - (time.monotonic() - self._t0)
            if ahead > 0:
                self._dock.stop.wait(ahead)

    def file_done(self, outcome: FileOutcome) -> None:
        self._board.file_done(self._dock.seq)


class SessionManager:
    """Dispatcher thread + session pool. ``submit`` is safe from any thread."""

    def __init__(
        self,
        ctx: Context,
        mounter: Mounter,
        automount: AutomountWatch,
        board: StatusBoard | None = None,
    ) -> None:
        self.ctx = ctx
        self.board = board or StatusBoard(ctx.config.dock.bay)  # (in memory only)
        self.cfg: DockConfig = ctx.config.dock
        self.mounter = mounter
        self.automount = automount
        self._queue: queue.Queue[BlockEvent | None] = queue.Queue()
        self._docks: dict[str, Dock] = {}
        self._all: list[Dock] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._accepting = True
        self._pool = ThreadPoolExecutor(self.cfg.max_parallel, thread_name_prefix="dock-session")
        # daemon: a stop waits for it with a bound; a blkid it runs must not hold up the exit
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="dock-dispatcher", daemon=True
        )

    # ------------------------------------------------------------------ events

    def start(self) -> None:
        self._dispatcher.start()

    def submit(self, ev: BlockEvent) -> None:
        self._queue.put(ev)

    @property
    def alive(self) -> bool:
        return self._dispatcher.is_alive()

    def _dispatch(self) -> None:
        while (ev := self._queue.get()) is not None:
            try:
                self.handle(ev)
            except Exception:
                log.exception("dock event handling failed", devnode=ev.devnode, action=ev.action)

    def handle(self, ev: BlockEvent) -> Dock | None:
        """Decide what one event means; returns the new dock, if one was started."""
        if not self._accepting:  # stopping: every dock is told to stop already
            log.debug("event ignored: dockd is stopping", action=ev.action, devnode=ev.devnode)
            return None
        if superseded(ev):
            log.debug("superseded block event ignored", action=ev.action, devnode=ev.devnode)
            return None
        ev = complete_event(self.cfg, ev)
        if ev.action == "remove" or (ev.action == "change" and not ev.has_filesystem):
            self._undock(ev)
            return None
        if ev.action not in ("add", "change"):
            return None
        rule, why = dockable(self.cfg.match, self.cfg.filesystems, ev)
        if rule is None:
            if first_match(self.cfg.match, ev) is not None and ev.fs_type is not None:
                log.info("device not docked", reason=why, **ev.describe())
            return None
        with self._lock:
            if not self._accepting:
                log.info("device not docked", reason="dockd is stopping", **ev.describe())
                return None
            current = self._docks.get(ev.devpath)
            if current is not None and current.ev.medium == ev.medium:
                return None  # the same medium, already docked (or taken and still there)
            if current is not None:
                self._mark_gone(current, "another medium in the same slot")
            dock = Dock(ev, next(self._seq), seen_at=self.ctx.clock.now(), ctx=self.ctx)
            dock.waits_for = [
                d
                for d in self._all
                if not d.finished.is_set() and (d is current or d.same_volume(ev))
            ]
            self._docks[ev.devpath] = dock
            self._all.append(dock)
            bay = self.board.seen(dock.seq, ev)
            log.info(
                "recorder seen",
                dock=dock.seq,
                bay=bay,
                action=ev.action,
                source=ev.source,
                rule=rule.name,
                event_at=ev.received_wall,
                **ev.describe(),
            )
            # Submitted under the lock: `stop` then sees every dock with its future, and
            # can tell one that will never start (cancelled) from one that is running.
            dock.future = self._pool.submit(self._run, dock)
        return dock

    def _mark_gone(self, dock: Dock, why: str) -> None:
        if not dock.gone.is_set():
            dock.gone.set()
            dock.stop.set()
            self.board.unplugged(dock.seq)
            taking = not dock.finished.is_set()
            (log.warning if taking else log.info)(
                "recorder removed",
                dock=dock.seq,
                reason=why,
                session_id=dock.session_id,
                device=dock.device,
                officer=dock.officer,
                taking=taking,
                devnode=dock.ev.devnode,
            )

    def _undock(self, ev: BlockEvent) -> None:
        with self._lock:
            dock = self._docks.get(ev.devpath)
            if dock is None:
                return
            if dock.finished.is_set():
                del self._docks[ev.devpath]
        self._mark_gone(dock, "unplugged" if ev.action == "remove" else "medium removed")

    # ---------------------------------------------------------------- sessions

    def _run(self, dock: Dock) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(dock=dock.seq, devnode=dock.ev.devnode)
        try:
            for other in dock.waits_for:
                while not other.finished.wait(0.2):
                    if dock.stop.is_set():
                        break
            if dock.stop.is_set():
                log.info("dock abandoned before it started", gone=dock.gone.is_set())
                return
            mount = self._acquire_mount(dock)
            if mount is None:
                log.info("dock abandoned before it started", gone=dock.gone.is_set())
                return
            try:
                self._take(dock, mount)
            finally:
                self.mounter.unmount(mount)
                dock.unmounted = not self.mounter.mounts_of(dock.ev)
        except MountAbandoned as exc:
            log.info("dock abandoned before it started", gone=dock.gone.is_set(), why=str(exc))
        except DockdError as exc:
            self._failed(dock, exc, severity="critical")
        except Exception as exc:
            log.exception("dock failed")
            self._failed(dock, exc, severity="critical")
        finally:
            with self._lock:
                dock.finished.set()
                if dock in self._all:
                    self._all.remove(dock)
                if dock.gone.is_set() and self._docks.get(dock.ev.devpath) is dock:
                    del self._docks[dock.ev.devpath]
            self.board.ended(
                dock.seq, outcome=dock.outcome, reason=dock.reason, unmounted=dock.unmounted
            )
            log.info(
                "dock ended",
                outcome=dock.outcome or "not taken",
                session_id=dock.session_id,
                device=dock.device,
                officer=dock.officer,
            )
            structlog.contextvars.clear_contextvars()

    def _failed(self, dock: Dock, exc: Exception, *, severity: str) -> None:
        ctx = dock.ctx or self.ctx  # the config it docked under
        subject = dock.device or dock.ev.devnode or dock.ev.devpath
        log.error("dock failed", error=str(exc), session_id=dock.session_id, device=subject)
        dock.reason = str(exc)
        try:
            ctx.alerts.raise_alert(
                "dock.failed",
                subject,
                f"the recorder at {dock.ev.devnode} ({dock.ev.prop('ID_FS_LABEL') or 'no label'})"
                f" could not be taken: {exc}",
                severity=severity,
                details={"session_id": dock.session_id, **dock.ev.describe()},
            )
        except Exception:
            log.exception("could not record the alert")

    def _acquire_mount(self, dock: Dock) -> Mount | None:
        """The automounter's mount if there is (or soon is) one, else our own."""
        found = self.mounter.existing(dock.ev)
        if found is not None:
            return found
        wait = self.cfg.automount_wait_s if self.automount.active else 0.0
        if wait > 0:
            deadline = time.monotonic() + wait
            generation = self.automount.generation
            while (left := deadline - time.monotonic()) > 0 and not dock.stop.is_set():
                generation = self.automount.wait(generation, min(left, 0.25))
                found = self.mounter.existing(dock.ev)
                if found is not None:
                    return found
        if dock.stop.is_set():
            return None
        return self.mounter.mount(dock.ev, stop=dock.stop)

    def _opened(self, dock: Dock, result: SessionResult, mount: Mount) -> None:
        """Session row exists: bind session, device and officer to every later event."""
        ctx = dock.ctx or self.ctx  # the config it docked under
        dock.session_id, dock.device = result.session_id, result.device_ref
        try:
            if result.device_number is not None:
                with ctx.ledger.read() as s:
                    dev = registry.device_by_number(s, result.device_number)
                    off = registry.officer_at(s, dev.id, ctx.clock.now())
                    dock.officer = off.badge if off is not None else None
            structlog.contextvars.bind_contextvars(
                session_id=result.session_id, device=result.device_ref, officer=dock.officer
            )
            self.board.identified(dock.seq, result.device_ref, dock.officer, result.session_id)
            capacity, free = checks.volume_space(mount.path, dock.ev.devnode)
            checks.record_space(ctx, result.session_id, capacity, free)
            log.info(
                "recorder docked",
                mountpoint=str(mount.path),
                mounted_by=mount.how,
                identified_by=result.identified_by,
                quarantined=result.quarantined,
                fs_capacity_bytes=capacity,
                fs_free_bytes=free,
                **dock.ev.describe(),
            )
        except Exception:
            log.exception("dock bookkeeping failed")

    def _take(self, dock: Dock, mount: Mount) -> None:
        ctx = dock.ctx or self.ctx  # the config it docked under
        result = run_ingest(
            ctx,
            mount.path,
            volume=dataclasses.replace(dock.ev.volume, seen_at=dock.seen_at),
            stop=dock.stop,
            progress=_Progress(dock, self.cfg.copy_limit_mb_s, self.board),
            on_open=lambda r: self._opened(dock, r, mount),
        )
        dock.outcome = result.outcome
        if result.outcome == SessionOutcome.INTERRUPTED and dock.gone.is_set():
            log.warning(
                "recorder unplugged during ingest",
                stored=result.count(FileStatus.STORED),
                present=result.count(FileStatus.PRESENT),
            )
        notes = None
        if result.outcome == SessionOutcome.REFUSED:  # the row's notes say why
            with ctx.ledger.read() as s:
                notes = s.get_one(DockSession, result.session_id).notes
        dock.reason = failure_reason(result.outcome, result.files, notes, gone=dock.gone.is_set())
        if result.outcome != SessionOutcome.REFUSED:
            found = checks.check_session(ctx, result, self.cfg.low_free_percent)
            self.board.checked(dock.seq, len(found.clock_suspect), found.free_percent)
        if self.cfg.wipe_after_ingest and not dock.stop.is_set():
            self._wipe(dock, result, mount)

    def _wipe(self, dock: Dock, result: SessionResult, mount: Mount) -> None:
        ctx = dock.ctx or self.ctx  # the config it docked under
        if not mount.owned:
            log.warning(
                "wipe skipped",
                reason="mounted by an automounter; dockd does not remount it read-write",
            )
            checks.append_note(ctx, result.session_id, "not wiped: mounted by automounter")
            return
        try:
            plan = wipe.plan_wipe(ctx, mount.path, result, stop=dock.stop)
            if not plan.allowed:
                if plan.blockers:
                    wipe.block(ctx, result, plan)
                    checks.append_note(
                        ctx,
                        result.session_id,
                        f"not wiped: {len(plan.blockers)} file(s) not verified in the store",
                    )
                return
            writable = self.mounter.remount(mount, dock.ev, writable=True, stop=dock.stop)
            mount.writable, mount.helper = True, writable.helper
            deleted = wipe.execute(ctx, writable.path, result, plan)
        except store.Interrupted:
            log.warning("wipe abandoned", reason="recorder removed or dockd stopping")
            return
        except DockdError as exc:
            log.error("wipe failed", error=str(exc))
            message = (
                f"recorder {result.device_ref} was not wiped after dock session "
                f"{result.session_id}: {exc}; its footage is verified in the store, so it can "
                "be deleted by hand"
            )
            session_alert(ctx, result, "wipe.failed", message, severity="warning")
            return
        checks.append_note(ctx, result.session_id, f"wiped: {deleted} verified file(s) deleted")

    # ---------------------------------------------------------------- shutdown

    def stop(self, timeout: float) -> bool:
        """Take no new docks; stop every session; True when all ended within ``timeout`` s.

        Bounded whatever the sessions are doing: a copy stops at its next chunk, a
        mount helper still running is killed, unmounts get only the time left (a
        busy mount is detached lazily), and a session stuck in the kernel past the
        deadline is abandoned (False).
        """
        deadline = time.monotonic() + timeout
        self.mounter.stop_by(deadline)
        with self._lock:
            self._accepting = False
            docks = list(self._all)
        for d in docks:
            d.stop.set()
        self._queue.put(None)
        self._pool.shutdown(wait=False, cancel_futures=True)
        for d in docks:  # queued docks that never started: nothing to wait for
            if d.future is not None and d.future.cancelled():
                d.finished.set()
                log.info("dock abandoned before it started", dock=d.seq, devnode=d.ev.devnode)
        clean = all(d.finished.wait(max(0.0, deadline - time.monotonic())) for d in docks)
        self._dispatcher.join(timeout=max(0.0, deadline - time.monotonic()))
        clean = clean and not self._dispatcher.is_alive()
        if clean:
            self._pool.shutdown(wait=True)
        return clean

    def running(self) -> list[Dock]:
        with self._lock:
            return [d for d in self._all if not d.finished.is_set()]
