"""After a crash: what a killed ingest left behind is found and put right.

Run at the start of every ``dockd ingest`` and ``dockd run`` (a ``dockd ingest``
may be the first thing that runs after a power cut)::

    PostgreSQL: the server processes of dead dockd processes of this machine and
        station ended (one may still be committing what recovery is about to ask about)
    store and quarantine: temporaries of dead processes removed; files published
        by a dead process without their ledger row removed (never twinned: the
        recorder still holds them and the next dock takes them again)
    dock sessions left 'running' by a process of this host that is gone
        -> 'interrupted', with an audit event and an alert

Nothing that belongs to a live process (the daemon beside a hand-run ingest) is
touched: ownership is by PID on this host (see ``store`` and ``DockSession.pid``).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path, PurePosixPath

import structlog
from sqlalchemy import select

from dockd import store
from dockd.context import Context
from dockd.ingest import session
from dockd.ingest.outcome import SessionOutcome
from dockd.ledger.models import DockSession, Recording
from dockd.runtime import BOOT_ID, pid_alive

log = structlog.get_logger("dockd.recovery")


def _owner_gone(row: DockSession, host: str) -> bool:
    """Is the process that ran this session gone (or no longer running it)?"""
    assert row.pid is not None
    if row.host != host:
        return False  # another station's machine: its own runs recover it
    if row.boot_id is not None and row.boot_id != BOOT_ID:
        return True  # the PID was of an earlier boot
    if row.pid == os.getpid():
        return not session.running_here(row.id)
    return not pid_alive(row.pid)


def this_host() -> str:
    return socket.gethostname()


def recover(ctx: Context, *, daemon_roots: tuple[Path, ...] = ()) -> None:
    """Everything below, in order. On PostgreSQL the server processes this machine's
    dead dockd processes of this station left are ended first (``Ledger.end_dead``): a
    commit one of them still runs must land, or not, before the ledger is asked what it
    holds. Where one cannot be ended, the store waits for the next run (its files keep
    their markers)."""
    unsettled = ctx.ledger.end_dead(ctx.config.station.id)
    if unsettled:
        log.warning(
            "server processes a dead dockd process of this station left on the ledger's "
            "PostgreSQL could not be ended, so its last commit may still land: the files "
            "it published keep their markers until a later run can ask the ledger. End "
            "them as the ledger's owner or a superuser (SELECT pg_terminate_backend(PID)) "
            "or wait until the server drops them",
            processes=", ".join(unsettled),
        )
    else:
        for root in (ctx.config.store.root, ctx.config.store.quarantine_root):
            recover_store(ctx, root)
    recover_sessions(ctx, daemon_roots=daemon_roots)


def recorded(ctx: Context, path: PurePosixPath, digest: str) -> int | None:
    """The id of this station's ledger row for the store path with this content; None
    when there is none."""
    with ctx.ledger.read() as s:
        return s.scalar(
            select(Recording.id)
            .where(
                Recording.station == ctx.config.station.id,
                Recording.store_path == path.as_posix(),
                Recording.blake3 == digest,
            )
            .limit(1)
        )


def recover_store(ctx: Context, root: Path) -> None:
    """Temporaries and unrecorded published files of dead processes, removed."""
    removed, orphans = store.recover_incoming(root, lambda p, h: recorded(ctx, p, h) is not None)
    for part in removed:
        log.warning("temporary file left by a crash removed", path=str(part))
    for orphan in orphans:
        log.warning(
            "file published by a crashed ingest without its ledger row removed; "
            "the recorder still holds it and the next dock takes it again",
            store_root=str(root),
            store_path=orphan.as_posix(),
        )


def recover_sessions(ctx: Context, *, daemon_roots: tuple[Path, ...] = ()) -> list[int]:
    """Close the sessions a dead process of this host left 'running' (audit + alert).

    A session knows its host and PID. Sessions written by an older dockd have none:
    those are the daemon's when their source lies under ``daemon_roots`` (its mount
    directory and automount roots), and only the daemon (which passes them) closes
    them.
    """
    now = ctx.clock.now()
    host = this_host()
    recovered: list[int] = []
    with ctx.ledger.session() as s:
        rows = s.scalars(
            select(DockSession)
            .where(DockSession.outcome == SessionOutcome.RUNNING)
            .where(DockSession.station == ctx.config.station.id)
            .where(DockSession.started_at <= now)
            .order_by(DockSession.id)
            # two processes recovering at once on PostgreSQL: each row closed once
            .with_for_update(skip_locked=True)
        )
        for row in rows:
            if row.pid is not None:
                if not _owner_gone(row, host):
                    continue
            elif not any(Path(row.source).is_relative_to(r) for r in daemon_roots):
                continue
            row.outcome, row.ended_at = SessionOutcome.INTERRUPTED, now
            note = (
                "the dockd process running this session stopped (crash, kill, ledger "
                "failure or power loss); dock the recorder again to take the files not yet stored"
            )
            session.add_note(row, note)
            details = {"outcome": row.outcome, "device": row.device_ref, "pid": row.pid}
            details |= session.counts(row)
            session.audit_event(s, ctx, "session.recovered", ("session", row.id), details, at=now)
            ctx.alerts.raise_alert(
                "ingest.interrupted",
                row.device_ref or row.source,
                f"dock session {row.id} of recorder {row.device_ref} was cut short when its "
                f"dockd process stopped unexpectedly, after {row.files_stored} stored / "
                f"{row.files_present} already present; dock the recorder again to take the rest",
                severity="warning",
                details={"session_id": row.id},
                session=s,
            )
            recovered.append(row.id)
    for sid in recovered:
        log.warning("session left running by a dead process marked interrupted", session_id=sid)
    return recovered
