"""What an ingest says happened: to each file, and to the dock session as a whole.

Plain values, no I/O. The statuses are ``StrEnum``: the ledger stores them as the
strings they equal (``FileStatus.STORED == "stored"``), so rows, reports and tests
read them as before.

    FileStatus      stored | present | failed | refused        (one file)
    SessionOutcome  running -> complete | partial | failed | refused | interrupted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from dockd.ingest.discover import Refusal


class FileStatus(StrEnum):
    """What became of one file on the recorder."""

    STORED = "stored"  # copied, verified and recorded by this session
    PRESENT = "present"  # already in the store (same recorder, same content)
    FAILED = "failed"  # not taken: it stays on the recorder, with an alert
    REFUSED = "refused"  # not a recording dockd takes (a link, a FIFO, ...)


class SessionOutcome(StrEnum):
    """How a dock session ended (``running`` while it runs)."""

    RUNNING = "running"
    COMPLETE = "complete"  # every file seen is in the store
    PARTIAL = "partial"  # some files failed or were refused
    FAILED = "failed"  # there were files, and none was taken
    REFUSED = "refused"  # nothing copied: an unknown or conflicting recorder, by policy
    INTERRUPTED = "interrupted"  # the recorder went away or dockd stopped


@dataclass(frozen=True)
class FileOutcome:
    relpath: str
    status: FileStatus
    reason: str | None = None
    file_id: int | None = None
    store_path: str | None = None
    flags: tuple[str, ...] = ()
    size: int = 0
    officer: str | None = None  # badge of the officer the file is tagged with

    @classmethod
    def of_refusal(cls, refusal: Refusal) -> FileOutcome:
        """A file discovery turned away: unreadable ones failed, the rest refused."""
        status = FileStatus.FAILED if refusal.unreadable else FileStatus.REFUSED
        return cls(refusal.display, status, refusal.reason)


@dataclass
class SessionResult:
    session_id: int
    source: str
    device_ref: str
    device_number: str | None
    identified_by: str | None
    quarantined: bool = False
    files: list[FileOutcome] = field(default_factory=list)
    bytes_copied: int = 0
    taken: int = 0  # files copied into the store so far (test pause points count these)
    _outcome: SessionOutcome = field(default=SessionOutcome.RUNNING, init=False)

    @property
    def outcome(self) -> SessionOutcome:
        return self._outcome

    @outcome.setter
    def outcome(self, value: str) -> None:
        """Set from a member or its string; anything else is a ValueError."""
        self._outcome = SessionOutcome(value)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def kept(self) -> int:
        """Files verified in the store: stored now or already present."""
        return self.count(FileStatus.STORED) + self.count(FileStatus.PRESENT)

    @property
    def ok(self) -> bool:
        """True when every file seen is verified in the store (stored or already present)."""
        return self.outcome == SessionOutcome.COMPLETE


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, outcome: FileOutcome) -> None:
        pass


class SourceGone(Exception):
    """The recorder disappeared (unplugged, unmounted) while it was being read."""
