"""One ingest per recorder at a time, across processes and, on PostgreSQL, stations.

Two ``dockd ingest`` of one recorder (or the daemon and a hand-run ingest) must not
both decide "not yet in the store" for the same file: the second would store a
duplicate. The lock is taken after the recorder is identified and before the dock
session opens, so whoever comes second finds every file the first stored.

- On this machine: ``flock`` on ``<runtime dir>/recorder-<hash>.lock``.
- On a PostgreSQL ledger: a session-level advisory lock as well, held on its own
  connection, so two stations docking the same recorder serialise too.

Both die with their holder: nothing to clean up after a crash.
"""

from __future__ import annotations

import hashlib
import threading
from types import TracebackType

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from dockd.errors import RecorderBusy
from dockd.ledger.db import Ledger
from dockd.runtime import FileLock, runtime_dir

_POLL_S = 0.2


def _key(ref: str) -> bytes:
    return hashlib.sha256(b"dockd-recorder\0" + ref.encode("utf-8", "surrogateescape")).digest()


class RecorderLock:
    """Held while one process ingests one recorder; ``with`` it, or acquire/release."""

    def __init__(self, ledger: Ledger, ref: str) -> None:
        self.ref = ref
        self._ledger = ledger
        self._file = FileLock(runtime_dir() / f"recorder-{_key(ref)[:8].hex()}.lock")
        self._pg: Connection | None = None

    def acquire(self, *, wait: bool, stop: threading.Event | None = None) -> bool:
        """Take the lock. Without ``wait`` a busy recorder raises :class:`RecorderBusy`;
        with it, waits until free (False if ``stop`` is set first)."""
        if not self._file.try_acquire(self.ref):
            if not wait:
                raise self._busy(f"PID {self._file.holder() or '?'} on this machine")
            if not self._file.acquire(self.ref, stop=stop):
                return False
        try:
            if self._ledger.dialect == "postgresql" and not self._pg_acquire(wait, stop):
                self._file.release()
                return False
        except BaseException:
            self._file.release()
            raise
        return True

    def _pg_acquire(self, wait: bool, stop: threading.Event | None) -> bool:
        key = int.from_bytes(_key(self.ref)[:8], "big", signed=True)
        conn = self._ledger.engine.connect()
        try:
            while True:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()
                if got:
                    self._pg = conn
                    return True
                if not wait:
                    raise self._busy("another station (PostgreSQL advisory lock)")
                if stop is not None and stop.wait(_POLL_S):
                    conn.close()
                    return False
                if stop is None:
                    threading.Event().wait(_POLL_S)
        except BaseException:
            conn.close()
            raise

    def _busy(self, who: str) -> RecorderBusy:
        return RecorderBusy(
            f"recorder {self.ref} is being ingested by another process ({who}); "
            "nothing was copied by this run. Wait for that run to finish, or run again "
            "with --wait to queue behind it"
        )

    def release(self) -> None:
        if self._pg is not None:
            # The connection goes back to the pool, not away: unlock explicitly.
            key = int.from_bytes(_key(self.ref)[:8], "big", signed=True)
            try:
                self._pg.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                self._pg.commit()
            except SQLAlchemyError:
                self._pg.invalidate()  # drop the connection, and the lock with it
            finally:
                self._pg.close()
                self._pg = None
        self._file.release()

    def __enter__(self) -> RecorderLock:
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()
