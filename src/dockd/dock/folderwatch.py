"""Watch the desktop automounter's mount roots (watchdog), so a mount it makes is used.

A desktop automounter (udisks2 under GNOME/KDE) may mount a recorder under
``/media/<user>/<label>`` or ``/run/media/<user>/<label>`` moments after the
udev event. dockd must then use that mount, not make a second one: a session
waits up to ``dock.automount_wait_s`` and is woken by this watcher whenever
something appears under a root, then re-reads the mount table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import structlog
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

log = structlog.get_logger("dockd.dock")


class _Wake(FileSystemEventHandler):
    def __init__(self, bump: threading.Condition, counter: list[int]) -> None:
        self._cond = bump
        self._counter = counter

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self._cond:
            self._counter[0] += 1
            self._cond.notify_all()


class AutomountWatch:
    """A generation counter bumped by filesystem events under the automount roots."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = tuple(roots)
        self._cond = threading.Condition()
        self._counter = [0]
        self._observer: BaseObserver | None = None
        self.watched: tuple[Path, ...] = ()

    def start(self) -> None:
        self.watched = tuple(r for r in self.roots if r.is_dir())
        if not self.watched:
            log.info(
                "no automount root to watch",
                roots=[str(r) for r in self.roots],
                note="recorders are mounted by dockd without waiting for an automounter",
            )
            return
        observer = Observer()
        handler = _Wake(self._cond, self._counter)
        for root in self.watched:
            observer.schedule(handler, str(root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        log.info("watching automount roots", roots=[str(r) for r in self.watched])

    @property
    def active(self) -> bool:
        return self._observer is not None

    @property
    def generation(self) -> int:
        with self._cond:
            return self._counter[0]

    def wait(self, generation: int, timeout: float) -> int:
        """Block until something changed since ``generation`` or ``timeout`` passed."""
        with self._cond:
            self._cond.wait_for(lambda: self._counter[0] != generation, timeout=timeout)
            return self._counter[0]

    def stop(self, timeout: float = 5.0) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=timeout)
            self._observer = None
