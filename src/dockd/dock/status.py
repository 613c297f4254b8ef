"""What each bay of the dock shows the officer: a state machine fed by the sessions.

Each USB port is a *bay*, named in ``[[dock.bay]]`` by udev's ``ID_PATH`` (a port
nobody named is called by its device node). A bay is in one state::

    idle -> docked -> copying -> done      (every file verified; safe to unplug only
                  \\          \\             once the filesystem is unmounted too)
                   `----------`-> failed   (with the reason and what to do next)

and the session manager tells the :class:`StatusBoard` what happens to each dock
(seen, identified, copying, each chunk and file, the device check, the end after
the unmount, the unplug). The board keeps each bay's figures (device, officer,
files and bytes done of total, rate, outcome, the sentence for the officer),
writes them all to the state file ``dockd status`` reads (atomically: a reader
sees the old file or the new one; progress at most every ``PROGRESS_EVERY_S``,
state changes at once) and hands each dock event to ``publish`` (the hooks and
LEDs, :mod:`dockd.dock.hooks`) in the order they happened.

"Safe to unplug" is said only when every file of the session is verified in the
store AND the recorder's filesystem is no longer mounted.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from dockd.config.dock import Bay as BayConfig
from dockd.dock.match import BlockEvent
from dockd.ingest.outcome import FileOutcome, FileStatus, SessionOutcome
from dockd.runtime import BOOT_ID

log = structlog.get_logger("dockd.dock")

PROGRESS_EVERY_S = 0.5
FORMAT_VERSION = 1


class BayState(StrEnum):
    IDLE = "idle"
    DOCKED = "docked"
    COPYING = "copying"
    DONE = "done"
    FAILED = "failed"


class DockEvent(StrEnum):
    """What the ``on_event`` command is told."""

    DOCKED = "docked"  # the recorder is identified: device and officer known
    COPYING = "copying"  # the copy starts: files and bytes to take known
    SAFE = "done-safe-to-unplug"  # every file verified and the filesystem unmounted
    DONE = "done"  # every file verified, but its filesystem is still mounted
    FAILED = "failed"  # not every file was taken: the reason says why
    LOW_STORAGE = "low-storage"  # the recorder's storage is nearly full
    CLOCK_WRONG = "clock-wrong"  # the recorder's clock got recording times wrong
    UNPLUGGED = "unplugged"  # the recorder left the bay


@dataclass
class Bay:
    """One bay's live figures (all plain values: written to the state file as they are)."""

    name: str
    id_path: str | None = None
    led: str | None = None
    mapped: bool = False  # named in [[dock.bay]] (else called by its device node)
    state: BayState = BayState.IDLE
    since: float = 0.0
    dock: int | None = None  # the dock this bay shows (the session manager's number)
    present: bool = False
    devnode: str | None = None
    device: str | None = None
    officer: str | None = None
    session_id: int | None = None
    files_done: int = 0
    files_total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    rate_bytes_s: float | None = None
    outcome: str | None = None
    reason: str | None = None
    safe_to_unplug: bool = False
    warnings: list[str] = field(default_factory=list)
    next: str = "free: dock a recorder"
    first_byte: float | None = None  # time.monotonic() of the first byte copied

    def reset(self, dock: int, devnode: str | None, at: float) -> None:
        fresh = Bay(self.name, self.id_path, self.led, self.mapped)
        self.__dict__.update(fresh.__dict__)
        self.dock, self.devnode, self.present = dock, devnode, True
        self.state, self.since = BayState.DOCKED, at
        self.next = "wait: reading the recorder; do not unplug"

    @property
    def eta_s(self) -> float | None:
        if self.state != BayState.COPYING or not self.rate_bytes_s or self.bytes_total is None:
            return None
        return round(max(0, self.bytes_total - self.bytes_done) / self.rate_bytes_s, 1)

    def as_dict(self, tz: tzinfo) -> dict[str, Any]:
        return {
            "bay": self.name,
            "id_path": self.id_path,
            "led": self.led,
            "state": str(self.state),
            "since": _local(self.since, tz),
            "next": self.next,
            "safe_to_unplug": self.safe_to_unplug,
            "present": self.present,
            "devnode": self.devnode,
            "device": self.device,
            "officer": self.officer,
            "session_id": self.session_id,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "rate_bytes_s": None if self.rate_bytes_s is None else round(self.rate_bytes_s),
            "eta_s": self.eta_s,
            "outcome": self.outcome,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }


def _local(at: float, tz: tzinfo) -> str | None:
    return datetime.fromtimestamp(at, tz).isoformat(timespec="seconds") if at else None


def failure_reason(
    outcome: str, files: Sequence[FileOutcome], notes: str | None, *, gone: bool
) -> str | None:
    """Why a session that ended ``outcome`` did not take every file (None: it did)."""
    if outcome == SessionOutcome.COMPLETE:
        return None
    if outcome == SessionOutcome.INTERRUPTED:
        who = "the recorder was unplugged" if gone else "dockd stopped"
        return f"{who} before every file was taken"
    if outcome == SessionOutcome.REFUSED:
        return f"the recorder was refused: {notes}" if notes else "the recorder was refused"
    missed = [f for f in files if f.status in (FileStatus.FAILED, FileStatus.REFUSED)]
    if not missed:
        return f"the session ended {outcome}"
    first = missed[0]
    return f"{len(missed)} file(s) not taken, e.g. {first.relpath}: {first.reason}"


class StatusBoard:
    """Every bay's state; thread-safe: each call comes from a session or dispatcher thread.

    ``path`` None keeps the state in memory only; ``publish`` None sends no events.
    """

    def __init__(
        self,
        bays: Sequence[BayConfig] = (),
        *,
        path: Path | None = None,
        tz: tzinfo = UTC,
        station: str = "",
        low_free_percent: float = 10.0,
        publish: Callable[[dict[str, Any]], None] | None = None,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.tz = tz
        self.station = station
        self.low_free_percent = low_free_percent
        self._publish = publish
        self._wall, self._mono = wall, mono
        self._by_id_path = {b.id_path: b for b in bays}
        self._bays: dict[str, Bay] = {
            b.name: Bay(b.name, b.id_path, b.led, mapped=True) for b in bays
        }
        self._of_dock: dict[int, Bay] = {}
        self._lock = threading.Lock()
        self._last_write = float("-inf")
        self._write_failed = False
        self._running = True

    # ------------------------------------------------------------------ reading

    def bays(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b.as_dict(self.tz) for b in self._bays.values()]

    def document(self) -> dict[str, Any]:
        """The state file's content."""
        return {
            "version": FORMAT_VERSION,
            "station": self.station,
            "daemon": "running" if self._running else "stopped",
            "pid": os.getpid(),
            "boot_id": BOOT_ID,
            "updated_at": _local(self._wall(), self.tz),
            "bays": [b.as_dict(self.tz) for b in self._bays.values()],
        }

    # -------------------------------------------------------------- transitions

    def start(self) -> None:
        """Write the file once with every configured bay idle."""
        with self._lock:
            self._write()

    def seen(self, dock: int, ev: BlockEvent) -> str:
        """A recorder arrived in its bay (not yet read); returns the bay's name."""
        id_path = ev.prop("ID_PATH")
        known = self._by_id_path.get(id_path) if id_path else None
        name = known.name if known is not None else (ev.devnode or ev.sys_name)
        with self._lock:
            bay = self._bays.get(name)
            if bay is None:
                bay = self._bays[name] = Bay(name, id_path)
            bay.reset(dock, ev.devnode, self._wall())
            self._of_dock[dock] = bay
            self._write()
        return name

    def identified(
        self, dock: int, device: str | None, officer: str | None, session_id: int
    ) -> None:
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            bay.device, bay.officer, bay.session_id = device, officer, session_id
            bay.next = "wait: do not unplug"
            self._emit(bay, DockEvent.DOCKED)

    def copying(self, dock: int, files: int, total_bytes: int) -> None:
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            self._enter(bay, BayState.COPYING)
            bay.files_total, bay.bytes_total = files, total_bytes
            bay.next = "wait: copying; do not unplug"
            self._emit(bay, DockEvent.COPYING)

    def advance(self, dock: int, nbytes: int) -> None:
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            now = self._mono()
            if bay.first_byte is None:
                bay.first_byte = now
            bay.bytes_done += nbytes
            if now > bay.first_byte:
                bay.rate_bytes_s = bay.bytes_done / (now - bay.first_byte)
            if now - self._last_write >= PROGRESS_EVERY_S:
                self._write()

    def file_done(self, dock: int) -> None:
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            bay.files_done += 1
            if self._mono() - self._last_write >= PROGRESS_EVERY_S:
                self._write()

    def checked(self, dock: int, clock_suspect: int, free_percent: float | None) -> None:
        """The device check's findings (a wrong clock, low storage): told at once."""
        if clock_suspect:
            what = f"clock: {clock_suspect} file(s) with recording times its clock got wrong"
            self._warn(dock, DockEvent.CLOCK_WRONG, what)
        if free_percent is not None and free_percent < self.low_free_percent:
            self._warn(dock, DockEvent.LOW_STORAGE, f"storage: {free_percent:.1f}% free")

    def _warn(self, dock: int, event: DockEvent, message: str) -> None:
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            bay.warnings.append(message)
            self._emit(bay, event, detail=message)

    def ended(
        self,
        dock: int,
        *,
        outcome: str | None,
        reason: str | None,
        unmounted: bool,
        still_mounted_at: str | None = None,
    ) -> None:
        """The dock is over and its mount taken down (``unmounted``: no mount is left)."""
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            bay.outcome = outcome
            if outcome is None and reason is None:  # never started: dockd stopping, or gone
                self._enter(bay, BayState.IDLE)
                bay.next = "free: dock a recorder" if not bay.present else "unplug and dock again"
                self._emit(bay, None)
            elif reason is None:
                self._enter(bay, BayState.DONE)
                bay.safe_to_unplug = unmounted and bay.present
                bay.next = self._done_sentence(bay, still_mounted_at)
                self._emit(bay, DockEvent.SAFE if bay.safe_to_unplug else DockEvent.DONE)
            else:
                self._enter(bay, BayState.FAILED)
                bay.reason = reason
                bay.next = (
                    "dock it again to take the rest"
                    if outcome == SessionOutcome.INTERRUPTED
                    else f"call the device manager: {reason}"
                )
                self._emit(bay, DockEvent.FAILED)
            if not bay.present and bay.state != BayState.FAILED:
                self._idle(bay)

    def unplugged(self, dock: int) -> None:
        """The recorder left the bay. A failure stays shown until the next recorder docks."""
        with self._lock:
            if (bay := self._current(dock)) is None:
                return
            bay.present = False
            self._emit(bay, DockEvent.UNPLUGGED)
            bay.safe_to_unplug = False
            if bay.state in (BayState.DONE, BayState.IDLE):
                self._idle(bay)

    def close(self) -> None:
        """dockd is stopping: the file says so (``dockd status`` reads it as stale)."""
        with self._lock:
            self._running = False
            self._write()

    # ------------------------------------------------------------------ helpers

    def _current(self, dock: int) -> Bay | None:
        """The bay still showing ``dock`` (a later recorder in the bay replaces it)."""
        bay = self._of_dock.get(dock)
        return bay if bay is not None and bay.dock == dock else None

    def _enter(self, bay: Bay, state: BayState) -> None:
        bay.state, bay.since = state, self._wall()

    def _idle(self, bay: Bay) -> None:
        if bay.dock is not None:
            self._of_dock.pop(bay.dock, None)
        if not bay.mapped:
            self._bays.pop(bay.name, None)
        else:
            bay.reset(0, None, self._wall())
            bay.state, bay.present, bay.dock = BayState.IDLE, False, None
            bay.next = "free: dock a recorder"
        self._emit(bay, None)

    @staticmethod
    def _done_sentence(bay: Bay, still_mounted_at: str | None) -> str:
        if not bay.safe_to_unplug:
            where = f" at {still_mounted_at}" if still_mounted_at else ""
            return (
                "do not unplug yet: every file is verified but the recorder is still "
                f"mounted{where}; eject it on this computer first"
            )
        extra = []
        if any(w.startswith("clock") for w in bay.warnings):
            extra.append("set the recorder's clock")
        if any(w.startswith("storage") for w in bay.warnings):
            extra.append("its storage is nearly full: tell the device manager")
        return "; ".join(["safe to unplug", *extra])

    def _emit(self, bay: Bay, event: DockEvent | None, detail: str | None = None) -> None:
        """Write the file, then hand the event on (under the lock: in order). An update
        without an event (back to idle) sets the bay's LED but runs no command."""
        self._write()
        if self._publish is None:
            return
        payload = {
            "event": None if event is None else str(event),
            "at": _local(self._wall(), self.tz),
            "station": self.station,
            **bay.as_dict(self.tz),
            "detail": detail,
        }
        try:
            self._publish(payload)
        except Exception:
            log.exception("dock event not handed on", dock_event=event, bay=bay.name)

    def _write(self) -> None:
        """Replace the state file atomically (a temporary file renamed over it)."""
        self._last_write = self._mono()
        if self.path is None:
            return
        data = json.dumps(self.document(), ensure_ascii=False, indent=1).encode() + b"\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            with open(fd, "wb") as fh:  # readable by `dockd status` whatever the umask
                os.fchmod(fh.fileno(), 0o644)
                fh.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if not self._write_failed:
                log.warning("dock status file not written", path=str(self.path), error=str(exc))
            self._write_failed = True
            return
        if self._write_failed:
            log.info("dock status file written again", path=str(self.path))
            self._write_failed = False
