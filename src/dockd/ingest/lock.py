"""One ingest per recorder at a time, across processes and, on PostgreSQL, stations.

Two ``dockd ingest`` of one recorder (or the daemon and a hand-run ingest) must not
both decide "not yet in the store" for the same file: the second would store a
duplicate. The lock is taken after the recorder is identified and before the dock
session opens, so whoever comes second finds every file the first stored.

A recorder is locked under every name it goes by: its identity (device number, or
the best identifier of an unregistered one) and its filesystem UUID. Two processes
that see it differently (the daemon knows the USB serial, a hand-run ingest does
not) still meet on the UUID. Names are taken in sorted order, so two processes
never hold one each and wait for the other.

- On this machine: ``flock`` on ``<runtime dir>/recorder-<hash>.lock`` per name.
- On a PostgreSQL ledger: a session-level advisory lock per name as well, held on
  its own connection, so two stations docking the same recorder serialise too.

Both die with their holder: nothing to clean up after a crash.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from types import TracebackType

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from dockd.errors import RecorderBusy
from dockd.ledger.db import Ledger
from dockd.runtime import FileLock, runtime_dir

_POLL_S = 0.2


def _digest(name: str) -> bytes:
    return hashlib.sha256(b"dockd-recorder\0" + name.encode("utf-8", "surrogateescape")).digest()


def _pg_key(name: str) -> int:
    return int.from_bytes(_digest(name)[:8], "big", signed=True)


class RecorderLock:
    """Held while one process ingests one recorder; ``with`` it, or acquire/release."""

    def __init__(self, ledger: Ledger, ref: str, *, aliases: Iterable[str] = ()) -> None:
        self.ref = ref
        self.names = sorted({ref, *aliases})
        self._ledger = ledger
        run = runtime_dir()
        self._files = [FileLock(run / f"recorder-{_digest(n)[:8].hex()}.lock") for n in self.names]
        self._pg: Connection | None = None
        self._pg_held: list[str] = []

    def acquire(self, *, wait: bool, stop: threading.Event | None = None) -> bool:
        """Take the lock. Without ``wait`` a busy recorder raises :class:`RecorderBusy`;
        with it, waits until free (False if ``stop`` is set first)."""
        try:
            for lock in self._files:
                if lock.try_acquire(self.ref):
                    continue
                if not wait:
                    raise self._busy(f"PID {lock.holder() or '?'} on this machine")
                if not lock.acquire(self.ref, stop=stop):
                    self.release()
                    return False
            if self._ledger.dialect == "postgresql" and not self._pg_acquire(wait, stop):
                self.release()
                return False
        except BaseException:
            self.release()
            raise
        return True

    def _pg_acquire(self, wait: bool, stop: threading.Event | None) -> bool:
        conn = self._ledger.engine.connect()
        self._pg = conn  # from here on `release` unlocks what was taken, or drops the link
        for name in self.names:
            while True:
                got = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": _pg_key(name)}
                ).scalar()
                conn.commit()
                if got:
                    self._pg_held.append(name)
                    break
                if not wait:
                    raise self._busy("another station (PostgreSQL advisory lock)")
                if stop.wait(_POLL_S) if stop is not None else threading.Event().wait(_POLL_S):
                    return False
        return True

    def _busy(self, who: str) -> RecorderBusy:
        return RecorderBusy(
            f"recorder {self.ref} is being ingested by another process ({who}); "
            "nothing was copied by this run. Wait for that run to finish, or run again "
            "with --wait to queue behind it"
        )

    def release(self) -> None:
        if self._pg is not None:
            # The connection goes back to the pool, not away: unlock explicitly.
            try:
                for name in self._pg_held:
                    self._pg.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _pg_key(name)})
                self._pg.commit()
            except SQLAlchemyError:
                self._pg.invalidate()  # drop the connection, and its locks with it
            finally:
                self._pg.close()
                self._pg = None
                self._pg_held = []
        for lock in self._files:
            lock.release()

    def __enter__(self) -> RecorderLock:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()


def lock_recorder(
    ledger: Ledger,
    ref: str,
    fs_uuid: str | None,
    *,
    wait: bool,
    stop: threading.Event | None,
) -> RecorderLock:
    """The recorder's lock, held: under its identity and its filesystem UUID.

    With ``wait`` a second process waits for the first (stoppable by ``stop``: then
    :class:`RecorderBusy` saying so); without it, :class:`RecorderBusy` at once.
    """
    lock = RecorderLock(ledger, ref, aliases=[f"fs_uuid:{fs_uuid}"] if fs_uuid else [])
    if not lock.acquire(wait=wait, stop=stop):
        raise RecorderBusy(
            f"dockd stopped while waiting for another ingest of recorder {ref} to end; "
            "nothing was copied: dock it again"
        )
    return lock
