"""The optional wipe after ingest (``dock.wipe_after_ingest``): all or nothing.

A recorder is wiped only when **every** recording on it is verified in the store,
now, by re-reading: the file on the recorder is hashed again, the ledger must
hold a stored row of this device with that path and that BLAKE3, and the stored
copy is hashed again from the store's disk. One file that fails any of this
blocks the whole wipe (and raises an alert naming it): a city once lost the
footage of 183 arrests that reached an upload server but never the final store.

Only then is the recorder mounted read-write, just for the deletions; each
deletion is an audit event. Files that are not recordings (the ID file, the
recorder's own system files) are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import structlog
from sqlalchemy import select

from dockd import store
from dockd.context import Context
from dockd.ingest.discover import discover
from dockd.ingest.outcome import SessionOutcome, SessionResult
from dockd.ingest.session import audit_event, session_alert
from dockd.ledger.models import Recording

log = structlog.get_logger("dockd.dock")


@dataclass(frozen=True)
class Verified:
    relpath: PurePosixPath  # as the OS names it (undecodable bytes as surrogate escapes)
    display: str  # as the ledger and people name it
    file_id: int
    blake3: str
    size: int


@dataclass
class WipePlan:
    """What may be deleted, and what blocks the wipe (any blocker: nothing is deleted)."""

    files: list[Verified] = field(default_factory=list)
    blockers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.blockers and bool(self.files)


def _hash_path(path: Path, bufsize: int, stop: threading.Event | None) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return store.hash_fd(fd, buffer_size=bufsize, stop=stop)
    finally:
        os.close(fd)


def plan_wipe(
    ctx: Context,
    source: Path,
    result: SessionResult,
    *,
    stop: threading.Event | None = None,
) -> WipePlan:
    """Re-verify every recording on the recorder against the ledger and the store."""
    plan = WipePlan()
    if result.outcome != SessionOutcome.COMPLETE:
        plan.blockers.append(("(session)", f"the session ended {result.outcome}, not complete"))
        return plan
    if result.quarantined or result.device_number is None:
        plan.blockers.append(
            ("(session)", "the recorder is not registered: its footage stays on it until it is")
        )
        return plan
    cfg = ctx.config
    bufsize = cfg.ingest.copy_buffer_kib * 1024
    candidates, refusals = discover(source, cfg.ingest)
    for r in refusals:
        plan.blockers.append((r.display, r.reason))
    for cand in candidates:
        rel = cand.display
        try:
            digest = _hash_path(source / cand.relpath, bufsize, stop)
        except OSError as exc:
            plan.blockers.append((rel, f"cannot re-read it on the recorder: {exc.strerror}"))
            continue
        with ctx.ledger.read() as s:
            row = s.scalar(
                select(Recording)
                .where(
                    Recording.device_ref == result.device_ref,
                    Recording.source_path_raw == cand.raw,
                    Recording.blake3 == digest,
                    Recording.state == "stored",
                )
                .order_by(Recording.id)
                .limit(1)
            )
        if row is None:
            plan.blockers.append((rel, "no stored ledger row of this device with this content"))
            continue
        try:
            again = store.hash_stored(cfg.store.root / row.store_path, buffer_size=bufsize)
        except OSError as exc:
            plan.blockers.append((rel, f"stored copy {row.store_path} unreadable: {exc.strerror}"))
            continue
        if again != digest:
            plan.blockers.append(
                (rel, f"stored copy {row.store_path} has BLAKE3 {again}, expected {digest}")
            )
            continue
        plan.files.append(Verified(cand.relpath, rel, row.id, digest, cand.size))
    return plan


def block(ctx: Context, result: SessionResult, plan: WipePlan) -> None:
    """Say why the recorder was not wiped (log, and an alert when files are at stake)."""
    shown = "; ".join(f"{p}: {why}" for p, why in plan.blockers[:5])
    more = f" (and {len(plan.blockers) - 5} more)" if len(plan.blockers) > 5 else ""
    log.warning(
        "wipe blocked",
        session_id=result.session_id,
        blockers=len(plan.blockers),
        reasons=[f"{p}: {why}" for p, why in plan.blockers[:10]],
    )
    message = (
        f"recorder {result.device_ref} was NOT wiped after dock session {result.session_id}: "
        f"{len(plan.blockers)} file(s) are not verified in the store: {shown}{more}. "
        "Nothing was deleted; dock it again after fixing the cause"
    )
    session_alert(ctx, result, "wipe.blocked", message, severity="warning", blockers=plan.blockers)


def execute(ctx: Context, writable: Path, result: SessionResult, plan: WipePlan) -> int:
    """Delete the verified files through the read-write mount; one audit event each."""
    deleted = 0
    failed: list[tuple[str, str]] = []
    for f in plan.files:
        path = writable / f.relpath
        try:
            st = os.lstat(path)
            if st.st_size != f.size:
                raise OSError(errno.EBUSY, "changed size since it was verified")
            os.unlink(path)
        except OSError as exc:
            failed.append((f.display, exc.strerror or str(exc)))
            continue
        deleted += 1
        details = {
            "device": result.device_ref,
            "source_path": f.display,
            "blake3": f.blake3,
            "size": f.size,
            "session_id": result.session_id,
        }
        with ctx.ledger.session() as s:
            audit_event(s, ctx, "recorder.wipe", ("file", f.file_id), details)
        log.info("file wiped from recorder", file=f.display, file_id=f.file_id)
    with contextlib.suppress(OSError):
        os.sync()
    if failed:
        message = (
            f"recorder {result.device_ref}: {len(failed)} verified file(s) could not be deleted "
            f"({failed[0][0]}: {failed[0][1]}); they are safe in the store, delete them by hand"
        )
        session_alert(ctx, result, "wipe.incomplete", message, severity="warning", failed=failed)
    log.info(
        "recorder wiped",
        session_id=result.session_id,
        deleted=deleted,
        failed=len(failed),
    )
    return deleted
