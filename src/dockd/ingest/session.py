"""The dock session's bookkeeping: its ``dock_sessions`` row, from open to close.

    opened   the row (host, PID, boot), known as running in this process while open;
             a ledger failure inside ends it as :class:`LedgerError` (``_ledger_failed``)
    admit    where the files go: the store, quarantine (unknown recorder, device
             conflict) or nowhere (refused by policy: the session ends 'refused')
    record   each file counted on the row as soon as it is decided (+ failure row, alert)
    close    the outcome, the ``session.end`` audit event, an alert when interrupted

Also the two ways every stage of a session speaks: :func:`session_alert` (subject
the recorder, details naming the session) and :func:`audit_event` (this station,
this actor), shared with recovery, the device check and the wipe.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dockd.context import Context
from dockd.errors import LedgerError
from dockd.ingest.clockcheck import RecorderClock
from dockd.ingest.describe import badge_mismatch_alert
from dockd.ingest.discover import Candidate, Refusal
from dockd.ingest.identify import Identity
from dockd.ingest.naming import NameInfo
from dockd.ingest.outcome import FileOutcome, FileStatus, SessionOutcome, SessionResult
from dockd.ledger import audit
from dockd.ledger.models import DockSession, SessionFailure
from dockd.runtime import BOOT_ID

log = structlog.get_logger("dockd.ingest")

# Dock sessions this process is running now. A 'running' session of this PID that is
# not here was cut short by a failure the process survived (the daemon lives on).
_ACTIVE: set[int] = set()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Plan:
    """What is known of a docked recorder before its session opens."""

    source: Path
    candidates: list[Candidate]
    refusals: list[Refusal]
    names: dict[PurePosixPath, NameInfo | None]
    identity: Identity
    evidence: dict[str, object]
    clock: RecorderClock | None = None  # read under the recorder's lock (clockcheck)


def running_here(session_id: int) -> bool:
    """Is this process running the session now?"""
    with _ACTIVE_LOCK:
        return session_id in _ACTIVE


def session_alert(
    ctx: Context,
    result: SessionResult,
    kind: str,
    message: str,
    *,
    severity: str,
    session: Session | None = None,
    **details: Any,
) -> None:
    """An alert about the docked recorder, naming its session in the details."""
    ctx.alerts.raise_alert(
        kind,
        result.device_ref,
        message,
        severity=severity,
        details={"session_id": result.session_id, **details},
        session=session,
    )


def audit_event(
    s: Session,
    ctx: Context,
    action: str,
    subject: tuple[str, int],
    details: dict[str, Any],
    *,
    at: datetime | None = None,
) -> None:
    """One audit event of this station and actor, inside the caller's transaction."""
    audit.record(
        s,
        at=at or ctx.clock.now(),
        station=ctx.config.station.id,
        actor=ctx.actor,
        action=action,
        subject_type=subject[0],
        subject_id=subject[1],
        details=details,
    )


def add_note(row: DockSession, note: str) -> None:
    """Add a note to the session's notes (what the dock noticed stays, in order)."""
    row.notes = f"{row.notes}; {note}" if row.notes else note


def counts(row: DockSession) -> dict[str, int]:
    """The session's file counts, as its audit events carry them."""
    return {
        "seen": row.files_seen,
        "stored": row.files_stored,
        "present": row.files_present,
        "failed": row.files_failed,
        "refused": row.files_refused,
        "bytes": row.bytes_copied,
    }


def _slog(result: SessionResult) -> structlog.typing.FilteringBoundLogger:
    return log.bind(session_id=result.session_id, device=result.device_ref)  # type: ignore[no-any-return]


@contextlib.contextmanager
def opened(
    ctx: Context, plan: Plan, on_open: Callable[[SessionResult], None] | None
) -> Iterator[SessionResult]:
    """The session's row, open for the block: this process is known to be running it
    (recovery leaves it alone), and a ledger failure inside becomes :class:`LedgerError`.

    ``on_open`` is called once the row exists, before any file is taken.
    """
    identity = plan.identity
    with ctx.ledger.session() as s:
        row = _insert(ctx, s, plan.source, identity, plan.clock)
    number = identity.device.number if identity.device else None
    result = SessionResult(row.id, str(plan.source), identity.ref, number, identity.how)
    with _ACTIVE_LOCK:
        _ACTIVE.add(result.session_id)
    try:
        if on_open is not None:
            on_open(result)
        _slog(result).info(
            "dock session started",
            source=result.source,
            files=len(plan.candidates),
            identified_by=identity.how,
        )
        try:
            yield result
        except SQLAlchemyError as exc:
            raise _ledger_failed(ctx, result, exc) from exc
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(result.session_id)


def _insert(
    ctx: Context, s: Session, source: Path, identity: Identity, clock: RecorderClock | None
) -> DockSession:
    capacity: int | None = None
    free: int | None = None
    with contextlib.suppress(OSError):
        vfs = os.statvfs(source)
        capacity, free = vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize
    row = DockSession(
        station=ctx.config.station.id,
        device_id=identity.device.id if identity.device else None,
        device_ref=identity.ref,
        identified_by=identity.how,
        source=str(source),
        started_at=ctx.clock.now(),
        fs_capacity_bytes=capacity,
        fs_free_bytes=free,
        quarantined=identity.device is None,
        outcome=SessionOutcome.RUNNING,
        host=socket.gethostname(),
        pid=os.getpid(),
        boot_id=BOOT_ID,
        clock_offset_s=clock.offset.total_seconds()
        if clock is not None and clock.offset is not None
        else None,
        notes=clock.time_file_error if clock is not None else None,
        files_seen=0,
        files_stored=0,
        files_present=0,
        files_failed=0,
        files_refused=0,
        bytes_copied=0,
    )
    s.add(row)
    s.flush()
    return row


def _ledger_failed(ctx: Context, result: SessionResult, exc: SQLAlchemyError) -> LedgerError:
    """The ledger failed mid-session: stop here, say so everywhere that still works.

    Files already committed are safe; the file in hand was unpublished; the session
    row stays 'running' and the next run closes it 'interrupted' (its process is gone).
    """
    url = ctx.ledger.engine.url.render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
    message = (
        f"the ledger at {url} failed during dock session {result.session_id} of recorder "
        f"{result.device_ref} ({reason}); {result.kept} file(s) were safely taken before it, "
        "the rest stay on the recorder: do not wipe it. Fix the ledger (free space, "
        "permissions, database server), then dock the recorder again"
    )
    _slog(result).critical("dock session aborted: ledger failed", error=reason, taken=result.kept)
    with contextlib.suppress(Exception):  # the alert goes wherever it can; the log has it
        session_alert(ctx, result, "ingest.ledger_failed", message, severity="critical")
    return LedgerError(message)


# ---------------------------------------------------------------------------- admit


def admit(ctx: Context, plan: Plan, result: SessionResult) -> Path | None:
    """Where the recorder's files go: the store, quarantine, or nowhere (refused)."""
    cfg = ctx.config
    identity, files = plan.identity, len(plan.candidates)
    if identity.conflict is not None:
        if _conflict(ctx, result, identity, files) == "refuse":
            _refuse(ctx, result, identity, files)
            return None
        result.quarantined = True
    elif identity.device is None:
        if cfg.ingest.unknown_device == "refuse":
            _refuse(ctx, result, identity, files)
            return None
        result.quarantined = True
        message = (
            f"recorder {identity.ref} at {result.source} is not registered: its {files} "
            "file(s) are copied to quarantine; register it with `dockd devices add` and "
            "assign it"
        )
        session_alert(
            ctx, result, "device.unknown", message, severity="warning", evidence=plan.evidence
        )
    elif identity.device.retired_at is not None and identity.device.retired_at <= ctx.clock.now():
        _retired(ctx, result, identity.device.retired_reason or "retired", files)
    return cfg.store.quarantine_root if result.quarantined else cfg.store.root


def _retired(ctx: Context, result: SessionResult, kind: str, files: int) -> None:
    """A device marked retired or lost docked: its files are still taken, loudly."""
    message = (
        f"device {result.device_ref}, marked {kind} in the registry, was docked at "
        f"{result.source}: its {files} file(s) are taken as usual; find out who has it"
    )
    session_alert(ctx, result, f"device.{kind}", message, severity="critical")


def _conflict(ctx: Context, result: SessionResult, identity: Identity, files: int) -> str:
    """Raise the critical alert for a recorder that names two devices; returns the policy."""
    assert identity.conflict is not None
    policy = ctx.config.ingest.device_conflict
    numbers = [d.number for d in identity.conflict.devices]
    done = (
        "nothing was copied (ingest.device_conflict = 'refuse')"
        if policy == "refuse"
        else f"its {files} file(s) are held in quarantine, flagged device-conflict"
    )
    message = (
        f"the recorder at {result.source} identifies itself as {' AND '.join(numbers)}: "
        f"{identity.conflict.describe()}. It was not filed under either device: {done}. "
        "Find out which device this really is (check the label on the recorder), correct the "
        "registry or the recorder's ID file, then dock it again"
    )
    claims = {k: [str(c) for c in v] for k, v in identity.conflict.claims.items()}
    session_alert(
        ctx, result, "device.conflict", message, severity="critical", devices=numbers, claims=claims
    )
    return policy


def _refuse(ctx: Context, result: SessionResult, identity: Identity, files: int) -> None:
    """Nothing is copied: an unknown recorder or a device conflict under 'refuse'."""
    result.outcome = SessionOutcome.REFUSED
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, result.session_id)
        row.outcome, row.ended_at = result.outcome, ctx.clock.now()
        row.files_seen = files
        if identity.conflict is not None:
            add_note(row, "device conflict refused by policy (ingest.device_conflict = 'refuse')")
        else:
            add_note(row, "unknown device refused by policy (ingest.unknown_device = 'refuse')")
            message = (
                f"recorder {result.device_ref} at {result.source} is not registered and the "
                f"policy is 'refuse': nothing was copied from its {files} file(s); "
                "register it with `dockd devices add` and dock it again"
            )
            session_alert(ctx, result, "device.unknown", message, severity="critical", session=s)
    log.warning("recorder refused", session_id=result.session_id, device=result.device_ref)


# ---------------------------------------------------------------------------- record, close

_LOGGED = {
    FileStatus.STORED: "file stored",
    FileStatus.PRESENT: "file already in store",
    FileStatus.FAILED: "file failed",
    FileStatus.REFUSED: "file refused",
}


def count(s: Session, session_id: int, outcome: FileOutcome, at: datetime) -> None:
    """Add one decided file to its session row's counts (a failure also gets its row),
    inside the caller's transaction: a stored file is counted in the very transaction
    that commits its ledger row, so the counts never lag the rows."""
    status = outcome.status
    stored = status == FileStatus.STORED
    row = s.get_one(DockSession, session_id)
    row.files_seen += status != FileStatus.REFUSED
    row.files_stored += stored
    row.files_present += status == FileStatus.PRESENT
    row.files_failed += status == FileStatus.FAILED
    row.files_refused += status == FileStatus.REFUSED
    row.bytes_copied += outcome.size if stored else 0
    if status in (FileStatus.FAILED, FileStatus.REFUSED):
        s.add(
            SessionFailure(
                session_id=row.id,
                source_path=outcome.relpath,
                disposition=status,
                reason=outcome.reason or "",
                at=at,
            )
        )


def record(
    ctx: Context, result: SessionResult, outcome: FileOutcome, *, counted: bool = False
) -> None:
    """Count one file on the session as soon as it is decided; ``counted``: its ledger
    transaction already counted it on the session row (:func:`count`)."""
    status = outcome.status
    stored = status == FileStatus.STORED
    result.files.append(outcome)
    result.bytes_copied += outcome.size if stored else 0
    if not counted:
        with ctx.ledger.session() as s:
            count(s, result.session_id, outcome, ctx.clock.now())
    slog = _slog(result)
    level = slog.info if status in (FileStatus.STORED, FileStatus.PRESENT) else slog.warning
    level(
        _LOGGED[status],
        file=outcome.relpath,
        reason=outcome.reason,
        store_path=outcome.store_path,
        flags=list(outcome.flags) or None,
        **({"officer": outcome.officer} if outcome.officer else {}),
    )
    if status == FileStatus.FAILED:
        ctx.alerts.raise_alert(
            "ingest.file_failed",
            f"{result.device_ref}:{outcome.relpath}",
            f"{outcome.relpath} on recorder {result.device_ref} was NOT stored: {outcome.reason}. "
            "It is still on the recorder; do not wipe it; dock it again after fixing the cause",
            severity="critical",
            details={"session_id": result.session_id},
            group=f"session:{result.session_id}",
            item=outcome.relpath,
        )
    if stored and outcome.file_id is not None and "badge-mismatch" in outcome.flags:
        badge_mismatch_alert(ctx, result.session_id, outcome.relpath, outcome.file_id)


def close(ctx: Context, result: SessionResult, candidates: int) -> None:
    """The session's outcome on its row and in the audit chain; an alert if interrupted."""
    failed, refused = result.count(FileStatus.FAILED), result.count(FileStatus.REFUSED)
    interrupted = result.outcome == SessionOutcome.INTERRUPTED
    if not interrupted:
        result.outcome = (
            SessionOutcome.COMPLETE
            if failed == 0 and refused == 0
            else SessionOutcome.FAILED
            if result.kept == 0 and candidates > 0
            else SessionOutcome.PARTIAL
        )
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, result.session_id)
        row.outcome, row.ended_at = result.outcome, ctx.clock.now()
        if interrupted:
            add_note(
                row,
                f"{candidates - result.kept} file(s) not taken before the recorder went away "
                "or dockd stopped",
            )
        details = {"outcome": row.outcome, "device": result.device_ref, **counts(row)}
        audit_event(s, ctx, "session.end", ("session", row.id), details, at=row.ended_at)
    stored, present = result.count(FileStatus.STORED), result.count(FileStatus.PRESENT)
    if interrupted:
        message = (
            f"dock session {result.session_id} of recorder {result.device_ref} was interrupted "
            f"after {stored} stored / {present} already present of {candidates} file(s); "
            "dock it again to take the rest"
        )
        session_alert(ctx, result, "ingest.interrupted", message, severity="warning")
    _slog(result).info(
        "dock session ended",
        outcome=result.outcome,
        stored=stored,
        present=present,
        failed=failed,
        refused=refused,
        bytes=result.bytes_copied,
    )
