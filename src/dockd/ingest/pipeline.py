"""One dock session, from a recorder's folder to verified rows in the ledger.

``run_ingest`` reads as its stages::

    discover  -> identify device -> open session -> for each file: take_file -> close session

and ``take_file`` as the path of one recording::

    open (no links, no FIFOs) -> already here? -> copy + BLAKE3 into .incoming
    -> probe -> recording time, officer, flags -> publish (no overwrite, 0440)
    -> optional re-read verify -> ledger row + audit event

A file either ends verified in the store with its ledger row, or in a failure
row and an alert naming it; never half-way. The same function serves
``dockd ingest`` and the dock daemon.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dockd import store
from dockd.context import Context
from dockd.errors import LedgerError, RecorderBusy, SourceError
from dockd.evidence import bycase, cases
from dockd.ingest import fatreader, recovery
from dockd.ingest.discover import Candidate, Refusal, discover
from dockd.ingest.identify import Identity, VolumeInfo, gather_evidence, identify
from dockd.ingest.lock import RecorderLock
from dockd.ingest.naming import NameInfo, parse_name
from dockd.ingest.probe import ProbeResult, probe
from dockd.ledger import audit, registry
from dockd.ledger.models import DockSession, Recording, SessionFailure
from dockd.runtime import BOOT_ID

log = structlog.get_logger("dockd.ingest")

# Tests make a real `dockd ingest` stop at a named point so it can be killed there:
# DOCKD_TEST_PAUSE=after-copy|after-publish|after-commit[:N] (the N-th file taken).
PAUSE_ENV = "DOCKD_TEST_PAUSE"

# Errors that mean the recorder itself went away, not that one file is bad.
_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOTCONN, errno.ESHUTDOWN}
PRE_REGISTRATION_SLACK = timedelta(days=365)


@dataclass(frozen=True)
class FileOutcome:
    relpath: str
    status: str  # stored | present | failed | refused
    reason: str | None = None
    file_id: int | None = None
    store_path: str | None = None
    flags: tuple[str, ...] = ()
    size: int = 0
    officer: str | None = None  # badge of the officer the file is tagged with


@dataclass
class SessionResult:
    session_id: int
    source: str
    device_ref: str
    device_number: str | None
    identified_by: str | None
    quarantined: bool = False
    outcome: str = "running"
    files: list[FileOutcome] = field(default_factory=list)
    bytes_copied: int = 0
    taken: int = 0  # files copied into the store so far (test pause points count these)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def ok(self) -> bool:
        """True when every file seen is verified in the store (stored or already present)."""
        return self.outcome == "complete"


class Progress(Protocol):
    def start(self, files: int, total_bytes: int) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...


class _NoProgress:
    def start(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, outcome: FileOutcome) -> None:
        pass


class SourceGone(Exception):
    """The recorder disappeared (unplugged, unmounted) while it was being read."""


# ---------------------------------------------------------------------------- stages


def run_ingest(
    ctx: Context,
    source: Path,
    *,
    device_number: str | None = None,
    volume: VolumeInfo | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    on_open: Callable[[SessionResult], None] | None = None,
    wait: bool = True,
) -> SessionResult:
    """Ingest every recording under ``source``; returns what happened to each file.

    ``on_open`` is called once the session row exists, before any file is taken
    (the dock daemon binds the session id and officer to its log context there).
    Only one process ingests a recorder at a time: with ``wait`` a second one waits
    for the first (stoppable by ``stop``), without it raises :class:`RecorderBusy`.
    A ledger that fails mid-session raises :class:`LedgerError`.
    """
    cfg = ctx.config
    progress = progress or _NoProgress()
    source = _check_source(source)
    volume = volume or VolumeInfo()
    # Files the mount cannot open are read from the device, staged on the store's disk.
    fallback = (
        fatreader.for_volume(volume, scratch=str(store.incoming_dir(cfg.store.root)))
        if volume.devnode
        else None
    )
    candidates, refusals = discover(source, cfg.ingest, fallback=fallback)
    names = {
        c.relpath: parse_name(PurePosixPath(c.display), cfg.naming, cfg.station.tz)
        for c in candidates
    }
    evidence = gather_evidence(source, volume, cfg.ingest.id_files, names.values())
    with ctx.ledger.read() as s:
        identity = identify(s, evidence, device_number=device_number)
    uuid = [f"fs_uuid:{volume.fs_uuid}"] if volume.fs_uuid else []
    lock = RecorderLock(ctx.ledger, identity.ref, aliases=uuid)
    if not lock.acquire(wait=wait, stop=stop):
        raise RecorderBusy(
            f"dockd stopped while waiting for another ingest of recorder {identity.ref} to end; "
            "nothing was copied: dock it again"
        )
    plan = _Plan(source, candidates, refusals, names, identity, evidence.__dict__)
    with lock:
        # Now that no other process can be taking this recorder: put right what a
        # dead one left (a run we waited for may have died mid-file).
        recovery.recover(ctx)
        return _run_locked(ctx, plan, stop=stop, progress=progress, on_open=on_open)


@dataclass(frozen=True)
class _Plan:
    """What is known of a docked recorder before its session opens."""

    source: Path
    candidates: list[Candidate]
    refusals: list[Refusal]
    names: dict[PurePosixPath, NameInfo | None]
    identity: Identity
    evidence: dict[str, object]


def _run_locked(
    ctx: Context,
    plan: _Plan,
    *,
    stop: threading.Event | None,
    progress: Progress,
    on_open: Callable[[SessionResult], None] | None,
) -> SessionResult:
    identity = plan.identity
    with ctx.ledger.session() as s:
        session_row = _open_session(ctx, s, plan.source, identity)
    result = SessionResult(
        session_row.id,
        str(plan.source),
        identity.ref,
        identity.device.number if identity.device else None,
        identity.how,
    )
    recovery.session_started(result.session_id)
    try:
        return _run_open(ctx, plan, result, stop=stop, progress=progress, on_open=on_open)
    finally:
        recovery.session_ended(result.session_id)


def _run_open(
    ctx: Context,
    plan: _Plan,
    result: SessionResult,
    *,
    stop: threading.Event | None,
    progress: Progress,
    on_open: Callable[[SessionResult], None] | None,
) -> SessionResult:
    identity = plan.identity
    if on_open is not None:
        on_open(result)
    slog = log.bind(session_id=result.session_id, device=identity.ref)
    slog.info(
        "dock session started",
        source=str(plan.source),
        files=len(plan.candidates),
        identified_by=identity.how,
    )
    try:
        return _take_all(ctx, plan, result, slog, stop=stop, progress=progress)
    except SQLAlchemyError as exc:
        raise _ledger_failed(ctx, result, exc, slog) from exc


def _take_all(
    ctx: Context,
    plan: _Plan,
    result: SessionResult,
    slog: structlog.typing.FilteringBoundLogger,
    *,
    stop: threading.Event | None,
    progress: Progress,
) -> SessionResult:
    cfg = ctx.config
    source, candidates, identity = plan.source, plan.candidates, plan.identity
    if identity.conflict is not None:
        if _conflict(ctx, result, identity, len(candidates)) == "refuse":
            return _refuse(ctx, result, candidates, identity)
        result.quarantined = True
    elif identity.device is None:
        if cfg.ingest.unknown_device == "refuse":
            return _refuse(ctx, result, candidates, identity)
        result.quarantined = True
        ctx.alerts.raise_alert(
            "device.unknown",
            identity.ref,
            f"recorder {identity.ref} at {source} is not registered: its {len(candidates)} "
            f"file(s) are copied to quarantine; register it with `dockd devices add` and assign it",
            severity="warning",
            details={"session_id": result.session_id, "evidence": plan.evidence},
        )
    root = cfg.store.quarantine_root if result.quarantined else cfg.store.root

    for refusal in plan.refusals:
        _record(ctx, result, _refused(refusal), slog)
    progress.start(len(candidates), sum(c.size for c in candidates))
    for cand in candidates:
        if stop is not None and stop.is_set():
            result.outcome = "interrupted"
            break
        try:
            outcome = take_file(
                ctx,
                source,
                root,
                cand,
                plan.names[cand.relpath],
                identity,
                result,
                stop=stop,
                progress=progress,
            )
        except SourceGone as exc:
            _record(ctx, result, FileOutcome(cand.display, "failed", str(exc)), slog)
            result.outcome = "interrupted"
            break
        except store.Interrupted:
            result.outcome = "interrupted"
            break
        _record(ctx, result, outcome, slog)
        progress.file_done(outcome)
    return _close_session(ctx, result, len(candidates), slog)


def _ledger_failed(
    ctx: Context,
    result: SessionResult,
    exc: SQLAlchemyError,
    slog: structlog.typing.FilteringBoundLogger,
) -> LedgerError:
    """The ledger failed mid-session: stop here, say so everywhere that still works.

    Files already committed are safe; the file in hand was unpublished; the session
    row stays 'running' and the next run closes it 'interrupted' (its process is gone).
    """
    url = ctx.ledger.engine.url.render_as_string(hide_password=True)
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
    done = result.count("stored") + result.count("present")
    message = (
        f"the ledger at {url} failed during dock session {result.session_id} of recorder "
        f"{result.device_ref} ({reason}); {done} file(s) were safely taken before it, the rest "
        "stay on the recorder: do not wipe it. Fix the ledger (free space, permissions, "
        "database server), then dock the recorder again"
    )
    slog.critical("dock session aborted: ledger failed", error=reason, taken=done)
    with contextlib.suppress(Exception):  # the alert goes wherever it can; the log has it
        ctx.alerts.raise_alert(
            "ingest.ledger_failed",
            result.device_ref,
            message,
            severity="critical",
            details={"session_id": result.session_id},
        )
    return LedgerError(message)


def _check_source(source: Path) -> Path:
    try:
        st = os.stat(source)
    except OSError as exc:
        raise SourceError(f"cannot read the recorder at {source}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{source} is not a directory; give the recorder's mount point")
    return source.absolute()


def _open_session(ctx: Context, s: Session, source: Path, identity: Identity) -> DockSession:
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
        outcome="running",
        host=socket.gethostname(),
        pid=os.getpid(),
        boot_id=BOOT_ID,
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
    ctx.alerts.raise_alert(
        "device.conflict",
        identity.ref,
        f"the recorder at {result.source} identifies itself as {' AND '.join(numbers)}: "
        f"{identity.conflict.describe()}. It was not filed under either device: {done}. "
        "Find out which device this really is (check the label on the recorder), correct the "
        "registry or the recorder's ID file, then dock it again",
        severity="critical",
        details={
            "session_id": result.session_id,
            "devices": numbers,
            "claims": {k: [str(c) for c in v] for k, v in identity.conflict.claims.items()},
        },
    )
    return policy


def _refuse(
    ctx: Context, result: SessionResult, candidates: list[Candidate], identity: Identity
) -> SessionResult:
    """Nothing is copied: an unknown recorder or a device conflict under 'refuse'."""
    result.outcome = "refused"
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, result.session_id)
        row.outcome, row.ended_at = "refused", ctx.clock.now()
        row.files_seen = len(candidates)
        if identity.conflict is not None:
            row.notes = "device conflict refused by policy (ingest.device_conflict = 'refuse')"
        else:
            row.notes = "unknown device refused by policy (ingest.unknown_device = 'refuse')"
            ctx.alerts.raise_alert(
                "device.unknown",
                result.device_ref,
                f"recorder {result.device_ref} at {result.source} is not registered and the "
                f"policy is 'refuse': nothing was copied from its {len(candidates)} file(s); "
                "register it with `dockd devices add` and dock it again",
                severity="critical",
                details={"session_id": result.session_id},
                session=s,
            )
    log.warning("recorder refused", session_id=result.session_id, device=result.device_ref)
    return result


# ---------------------------------------------------------------------------- one file


def take_file(
    ctx: Context,
    source: Path,
    root: Path,
    cand: Candidate,
    name: NameInfo | None,
    identity: Identity,
    result: SessionResult,
    *,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> FileOutcome:
    """Bring one file into the store, or say precisely why not."""
    cfg = ctx.config
    rel = cand.display
    bufsize = cfg.ingest.copy_buffer_kib * 1024
    try:
        fd = _open_source(source, cand)
    except _NotRegular as exc:
        return FileOutcome(rel, "refused", str(exc))
    except OSError as exc:
        return _failed_or_gone(source, rel, "cannot open", exc)
    try:
        size = cand.size if cand.fallback is not None else os.fstat(fd).st_size
        if _present_by_name(ctx, identity.ref, cand.raw, size, fd, bufsize, stop):
            return FileOutcome(rel, "present", size=size)
        try:
            os.lseek(fd, 0, os.SEEK_SET)
        except OSError as exc:  # a pipe from the fallback reader: open it again
            if exc.errno != errno.ESPIPE:
                raise
            os.close(fd)
            fd = -1  # closed: the `finally` below must not close a number reused since
            fd = _open_source(source, cand)
        incoming = store.copy_into_incoming(
            root,
            fd,
            buffer_size=bufsize,
            stop=stop,
            progress=progress.advance if progress is not None else None,
        )
    except OSError as exc:
        return _failed_or_gone(source, rel, "copy failed", exc)
    finally:
        if fd >= 0:
            os.close(fd)
    if incoming.size != size:
        incoming.discard()
        return FileOutcome(
            rel,
            "failed",
            f"changed size while being copied ({size} -> {incoming.size} bytes); "
            "the recorder may still be writing it: dock it again when it has finished",
        )

    result.taken += 1
    _pause("after-copy", result.taken, rel)
    published: PurePosixPath | None = None
    committing = False
    try:
        if _present_by_hash(ctx, identity.ref, incoming.blake3):
            incoming.discard()
            return FileOutcome(rel, "present", size=incoming.size)
        info = probe(incoming.path)
        row, officer_badge = _describe(ctx, cand, name, identity, info, incoming, result)
        target = store.render_path(
            cfg.store.path_template,
            local_time=row.recorded_start.astimezone(cfg.station.tz),
            device=identity.ref,
            badge=officer_badge,
            station=cfg.station.id,
            source_name=PurePosixPath(rel).name,
            kind=cand.kind,
        )
        published = store.publish(
            root, incoming, target, taken=lambda p: _path_in_ledger(ctx, p.as_posix())
        )
        row.store_path = published.as_posix()
        _pause("after-publish", result.taken, rel)
        if cfg.ingest.verify == "reread":
            again = store.hash_stored(root / published, buffer_size=bufsize)
            if again != incoming.blake3:
                raise OSError(
                    errno.EIO,
                    f"re-read of the stored copy gave BLAKE3 {again}, "
                    f"expected {incoming.blake3}: the store disk may be failing",
                )
            row.verified = True
        committing = True
        file_id = _commit_row(ctx, row, officer_badge)
    except BaseException as exc:
        incoming.discard()
        if committing and published is not None and not isinstance(exc, IntegrityError):
            _commit_unknown(ctx, root, published, incoming)
            raise
        if published is not None:
            store.unpublish(root, published)
        store.settle(incoming)
        if isinstance(exc, OSError):
            return FileOutcome(rel, "failed", f"store failed: {_oserror(exc)}")
        if isinstance(exc, IntegrityError):  # this row only; the ledger itself works
            return FileOutcome(rel, "failed", f"ledger refused the row, file not kept: {exc.orig}")
        raise
    store.settle(incoming)
    _pause("after-commit", result.taken, rel)
    if row.case_number is not None:  # tagged on arrival by an imported case
        try:
            bycase.link_file(cfg, row)
        except OSError as exc:  # the per-case view is secondary; `dockd cases links` mends it
            log.warning("per-case link failed", file=rel, error=str(exc))
    if row.probe_failed:
        ctx.alerts.raise_alert(
            "ingest.probe_failed",
            f"{identity.ref}:{rel}",
            f"{rel} from {identity.ref} is stored as {row.store_path} (BLAKE3 {row.blake3}) but "
            f"cannot be played: {row.probe_error}; it is kept as evidence and flagged",
            severity="warning",
            details={"file_id": file_id, "session_id": result.session_id},
            group=f"session:{result.session_id}",
            item=rel,
        )
    return FileOutcome(
        rel,
        "stored",
        file_id=file_id,
        store_path=row.store_path,
        flags=tuple(row.flags),
        size=row.size_bytes,
        officer=officer_badge,
    )


def _commit_unknown(
    ctx: Context, root: Path, published: PurePosixPath, incoming: store.Incoming
) -> None:
    """The commit failed in a way that may still have landed (a connection lost after
    COMMIT was sent, an interrupt): ask the ledger afresh before touching the file.

    Recorded: keep it. Not recorded: unpublish. Cannot tell: leave the file and its
    marker; the next run's recovery asks again.
    """
    try:
        kept = recovery.recorded(ctx, published, incoming.blake3)
    except SQLAlchemyError:
        store.abandon(incoming)
        return
    if not kept:
        store.unpublish(root, published)
    store.settle(incoming)


class _NotRegular(Exception):
    pass


def _open_source(source: Path, cand: Candidate) -> int:
    """Open without following a link and without blocking on a FIFO swapped in late."""
    if cand.fallback is not None:
        return cand.fallback.open(cand.raw)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(source / cand.relpath, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NotRegular("became a symbolic link while docked: refused") from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _NotRegular("is no longer a regular file: refused")
    os.set_blocking(fd, True)
    return fd


def _oserror(exc: OSError) -> str:
    return f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno else str(exc)


def _failed_or_gone(source: Path, rel: str, what: str, exc: OSError) -> FileOutcome:
    if exc.errno in _GONE or not _source_alive(source):
        raise SourceGone(f"{what}: the recorder went away ({_oserror(exc)})") from exc
    return FileOutcome(rel, "failed", f"{what}: {_oserror(exc)}")


def _source_alive(source: Path) -> bool:
    try:
        os.listdir(source)
    except OSError:
        return False
    return True


def _present_by_name(
    ctx: Context,
    device_ref: str,
    raw: bytes,
    size: int,
    fd: int,
    bufsize: int,
    stop: threading.Event | None,
) -> bool:
    """Same recorder, same path, same size already in the ledger? Then confirm by hash only.

    Trashed and purged files count too: re-docking a recorder that was never wiped
    must not bring back footage that retention has already let go.
    """
    with ctx.ledger.read() as s:
        hashes = set(
            s.scalars(
                select(Recording.blake3).where(
                    Recording.device_ref == device_ref,
                    Recording.source_path_raw == raw,
                    Recording.size_bytes == size,
                )
            )
        )
    if not hashes:
        return False
    return store.hash_fd(fd, buffer_size=bufsize, stop=stop) in hashes


def _path_in_ledger(ctx: Context, store_path: str) -> bool:
    """A row of this station already uses the path (a trashed, purged or quarantined file)."""
    with ctx.ledger.read() as s:
        return (
            s.scalar(
                select(Recording.id)
                .where(
                    Recording.station == ctx.config.station.id,
                    Recording.store_path == store_path,
                )
                .limit(1)
            )
            is not None
        )


def _present_by_hash(ctx: Context, device_ref: str, digest: str) -> bool:
    with ctx.ledger.read() as s:
        return (
            s.scalar(
                select(Recording.id)
                .where(
                    Recording.blake3 == digest,
                    Recording.device_ref == device_ref,
                )
                .limit(1)
            )
            is not None
        )


def _describe(
    ctx: Context,
    cand: Candidate,
    name: NameInfo | None,
    identity: Identity,
    info: ProbeResult,
    incoming: store.Incoming,
    result: SessionResult,
) -> tuple[Recording, str | None]:
    """Decide recording time, officer and flags for one file (no I/O but the ledger)."""
    cfg = ctx.config
    now = ctx.clock.now()
    if info.creation_time is not None:
        start, time_source = info.creation_time, "container"
    elif name is not None and name.timestamp is not None:
        start, time_source = name.timestamp, "filename"
    else:
        start, time_source = datetime.fromtimestamp(cand.mtime, UTC), "mtime"
    tolerance = timedelta(hours=cfg.ingest.clock_tolerance_hours)
    suspect = start > now + tolerance
    if name is not None and name.timestamp is not None and info.creation_time is not None:
        suspect |= abs(name.timestamp - info.creation_time) > tolerance
    if identity.device is not None:
        suspect |= start < identity.device.registered_at - PRE_REGISTRATION_SLACK
    badge = name.badge if name is not None else None
    with ctx.ledger.read() as s:
        officer = registry.officer_at(s, identity.device.id, start) if identity.device else None
        if officer is None and badge:
            officer = registry.find_officer(s, badge)
    row = Recording(
        station=cfg.station.id,
        session_id=result.session_id,
        device_id=identity.device.id if identity.device else None,
        device_ref=identity.ref,
        officer_id=officer.id if officer else None,
        badge_hint=badge,
        kind=cand.kind,
        recorded_start=start.astimezone(UTC),
        recorded_end=(start + timedelta(seconds=info.duration_s)).astimezone(UTC)
        if info.duration_s
        else None,
        time_source=time_source,
        duration_s=info.duration_s,
        container=info.container,
        video_codec=info.video_codec,
        audio_codec=info.audio_codec,
        width=info.width,
        height=info.height,
        size_bytes=incoming.size,
        blake3=incoming.blake3,
        source_path=cand.display,
        source_path_raw=cand.raw,
        store_path="",
        ingested_at=now,
        verified=False,
        probe_failed=info.error is not None,
        probe_error=info.error,
        clock_suspect=suspect,
        unregistered=identity.device is None and identity.conflict is None,
        device_conflict=identity.conflict is not None,
        access_class="normal",
        state="stored",
    )
    return row, officer.badge if officer is not None else badge


def _commit_row(ctx: Context, row: Recording, officer_badge: str | None) -> int:
    """The ledger row and its audit event, in one transaction, after the bytes are safe."""
    with ctx.ledger.session() as s:
        s.add(row)
        s.flush()
        audit.record_file_change(
            s,
            row,
            at=row.ingested_at,
            actor=ctx.actor,
            action="file.ingest",
            changed=audit.AUDITED_FILE_COLUMNS,
            details={
                "size": row.size_bytes,
                "officer": officer_badge,
                "time_source": row.time_source,
                "flags": row.flags,
                "session_id": row.session_id,
                "verified": row.verified,
            },
        )
        cases.tag_on_ingest(s, row, at=row.ingested_at, actor=ctx.actor)
        return row.id


def _refused(refusal: Refusal) -> FileOutcome:
    status = "failed" if refusal.unreadable else "refused"
    return FileOutcome(refusal.display, status, refusal.reason)


def _pause(point: str, nth: int, rel: str) -> None:
    """Stop here for ever when a test asked for it (see PAUSE_ENV); a no-op otherwise."""
    want = os.environ.get(PAUSE_ENV)
    if not want:
        return
    name, _, n = want.partition(":")
    if name != point or nth != (int(n) if n.isdigit() else 1):
        return
    sys.stderr.write(f"dockd-test-pause {point} {rel}\n")
    sys.stderr.flush()
    threading.Event().wait()


# ---------------------------------------------------------------------------- bookkeeping


def _record(
    ctx: Context,
    result: SessionResult,
    outcome: FileOutcome,
    slog: structlog.typing.FilteringBoundLogger,
) -> None:
    """Count one file on the session row as soon as it is decided."""
    result.files.append(outcome)
    if outcome.status == "stored":
        result.bytes_copied += outcome.size
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, result.session_id)
        row.files_seen += outcome.status != "refused"
        row.files_stored += outcome.status == "stored"
        row.files_present += outcome.status == "present"
        row.files_failed += outcome.status == "failed"
        row.files_refused += outcome.status == "refused"
        row.bytes_copied += outcome.size if outcome.status == "stored" else 0
        if outcome.status in ("failed", "refused"):
            s.add(
                SessionFailure(
                    session_id=row.id,
                    source_path=outcome.relpath,
                    disposition=outcome.status,
                    reason=outcome.reason or "",
                    at=ctx.clock.now(),
                )
            )
    event = {
        "stored": "file stored",
        "present": "file already in store",
        "failed": "file failed",
        "refused": "file refused",
    }[outcome.status]
    level = slog.info if outcome.status in ("stored", "present") else slog.warning
    level(
        event,
        file=outcome.relpath,
        reason=outcome.reason,
        store_path=outcome.store_path,
        flags=list(outcome.flags) or None,
        **({"officer": outcome.officer} if outcome.officer else {}),
    )
    if outcome.status == "failed":
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


def _close_session(
    ctx: Context,
    result: SessionResult,
    candidates: int,
    slog: structlog.typing.FilteringBoundLogger,
) -> SessionResult:
    failed = result.count("failed")
    if result.outcome != "interrupted":
        taken = result.count("stored") + result.count("present")
        result.outcome = (
            "complete"
            if failed == 0 and result.count("refused") == 0
            else "failed"
            if taken == 0 and candidates > 0
            else "partial"
        )
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, result.session_id)
        row.outcome, row.ended_at = result.outcome, ctx.clock.now()
        if result.outcome == "interrupted":
            missing = candidates - result.count("stored") - result.count("present")
            row.notes = (
                f"{missing} file(s) not taken before the recorder went away or dockd stopped"
            )
        audit.record(
            s,
            at=row.ended_at,
            station=row.station,
            actor=ctx.actor,
            action="session.end",
            subject_type="session",
            subject_id=row.id,
            details={
                "outcome": row.outcome,
                "device": result.device_ref,
                "seen": row.files_seen,
                "stored": row.files_stored,
                "present": row.files_present,
                "failed": row.files_failed,
                "refused": row.files_refused,
                "bytes": row.bytes_copied,
            },
        )
    if result.outcome == "interrupted":
        ctx.alerts.raise_alert(
            "ingest.interrupted",
            result.device_ref,
            f"dock session {result.session_id} of recorder {result.device_ref} was interrupted "
            f"after {result.count('stored')} stored / {result.count('present')} already present "
            f"of {candidates} file(s); dock it again to take the rest",
            severity="warning",
            details={"session_id": result.session_id},
        )
    slog.info(
        "dock session ended",
        outcome=result.outcome,
        stored=result.count("stored"),
        present=result.count("present"),
        failed=failed,
        refused=result.count("refused"),
        bytes=result.bytes_copied,
    )
    return result
