"""Quarantine release: footage of a recorder registered after it docked goes to the store.

A recorder that was not registered when it docked (``files.unregistered``), or
whose evidence named two registered devices (``files.device_conflict``), had its
files copied under the quarantine root. Once the device is registered (or the
right one of the two is known), ``release`` moves each file to the store path it
would have had, one file at a time::

    hard link (or copy) into <store>/.incoming -> BLAKE3 == the row's?
    -> publish under the store's path template (marker, no overwrite, 0440, fsync)
    -> row re-pointed + audit event, one transaction -> marker settled
    -> quarantine copy unlinked

A crash before the commit leaves the row on its quarantine copy (the store's
recovery removes the published twin, as for any ingest); after it, the row is on
the store copy, and at worst a quarantine copy is left for the fixity sweep to name.
The row takes the device's number as ``device_ref``, so the next dock of the
recorder finds its files already present.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dockd import store
from dockd.context import Context
from dockd.errors import NotFound, UsageError
from dockd.ingest.lock import lock_recorder
from dockd.ledger import attribution, audit, registry
from dockd.ledger.models import Device, FileState, Recording
from dockd.store.markers import owner_tag
from dockd.store.paths import render_path

HELD = Recording.in_quarantine


@dataclass
class Released:
    """What ``release`` did: files moved (id, new store path) and files it could not."""

    device: str
    moved: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def held(session: Session) -> list[Recording]:
    """Every file still held in the quarantine (stored, not trashed), oldest first."""
    q = select(Recording).where(HELD, Recording.state == FileState.STORED).order_by(Recording.id)
    return list(session.scalars(q))


def listing(session: Session, tz: tzinfo) -> list[dict[str, Any]]:
    """``dockd quarantine list``: each held file and the recorder reference it came under."""
    return [
        {
            "id": r.id,
            "recorder": r.device_ref,
            "session": r.session_id,
            "recorded_at": r.recorded_start.astimezone(tz).isoformat(),
            "source_path": r.source_path,
            "quarantine_path": r.store_path,
            "flags": " ".join(r.flags),
        }
        for r in held(session)
    ]


def refs_of(device: Device) -> set[str]:
    """The names an unregistered recorder would have had in the ledger if it is this
    device (see :meth:`dockd.ingest.identify.Evidence.ref`)."""
    refs = {device.number}
    for key in ("serial", "fs_uuid", "fs_label"):
        value = getattr(device, key, None)
        if value:
            refs.add(f"{key}:{value}")
    return refs


def registered(session: Session, number: str) -> Device:
    """The device to release to; a clear error naming the commands when it is unknown."""
    try:
        return registry.device_by_number(session, number)
    except NotFound:
        raise NotFound(
            f"device {number!r} is not registered, so its footage cannot leave the "
            f"quarantine: register it with `dockd devices add {number} --serial ...` "
            f"(and `dockd assign {number} BADGE --from DATE`), then run "
            f"`dockd quarantine release {number}` again"
        ) from None


def select_held(
    session: Session,
    device: Device,
    *,
    file_ids: Sequence[int] = (),
    session_id: int | None = None,
) -> list[Recording]:
    """The quarantined files to release to ``device``.

    By file ids or by dock session: exactly those (a device conflict is resolved this
    way, by naming the right device). Otherwise every unregistered file whose recorder
    reference is the device's number, serial, filesystem UUID or label.
    """
    q = select(Recording).where(HELD, Recording.state == FileState.STORED)
    if file_ids:
        rows = list(session.scalars(q.where(Recording.id.in_(file_ids))))
        missing = sorted(set(file_ids) - {r.id for r in rows})
        if missing:
            raise UsageError(
                f"file(s) {', '.join(map(str, missing))} are not held in the quarantine; "
                "`dockd quarantine list` shows those that are"
            )
        return sorted(rows, key=lambda r: r.id)
    if session_id is not None:
        return list(session.scalars(q.where(Recording.session_id == session_id)))
    q = q.where(Recording.unregistered.is_(True), Recording.device_ref.in_(refs_of(device)))
    return list(session.scalars(q.order_by(Recording.id)))


def release(
    ctx: Context,
    number: str,
    *,
    reason: str,
    file_ids: Sequence[int] = (),
    session_id: int | None = None,
) -> Released:
    """Move the selected quarantined files of device ``number`` into the store."""
    if not reason.strip():
        raise UsageError("say why the files are released (--reason)")
    with ctx.ledger.read() as s:
        device = registered(s, number)
        device_id, fs_uuid = device.id, device.fs_uuid
    result = Released(device=number)
    # The recorder's own lock: a dock of it waits until its footage is in the store
    # (and then finds it present), and two releases of it cannot interleave.
    with lock_recorder(ctx.ledger, number, fs_uuid, wait=True, stop=ctx.stop):
        with ctx.ledger.read() as s:
            device = s.get_one(Device, device_id)
            ids = [r.id for r in select_held(s, device, file_ids=file_ids, session_id=session_id)]
        for file_id in ids:
            ctx.check_stop()
            try:
                path = _release_one(ctx, file_id, device_id, number, reason)
            except (OSError, _Refused, IntegrityError) as exc:  # this file only
                result.failed.append((file_id, str(getattr(exc, "orig", None) or exc)))
            else:
                result.moved.append((file_id, path))
    return result


class _Refused(Exception):
    """This file is not released (changed since it was selected, or its bytes differ)."""


def _release_one(ctx: Context, file_id: int, device_id: int, number: str, reason: str) -> str:
    cfg = ctx.config
    with ctx.ledger.read() as s:
        row = s.get_one(Recording, file_id)
        if not row.in_quarantine or row.state != FileState.STORED:
            raise _Refused(f"file {file_id} is no longer held in the quarantine")
        old_path = row.store_path
        who = attribution.attribute(s, device_id, row.recorded_start, row.badge_hint)
        if row.officer_by_hand:  # a person attributed it while it was held: that stands
            who = attribution.Attribution(row.officer, row.badge_mismatch)
        badge = who.officer.badge if who.officer is not None else row.badge_hint
        target = render_path(
            cfg.store.path_template,
            local_time=row.recorded_start.astimezone(cfg.station.tz),
            device=number,
            badge=badge,
            station=cfg.station.id,
            source_name=PurePosixPath(row.source_path).name,
            kind=row.kind,
        )
        expected = (row.blake3, row.size_bytes)
    source = cfg.store.quarantine_root / old_path
    incoming = _stage(cfg.store.root, source)
    if (incoming.blake3, incoming.size) != expected:
        incoming.discard()
        raise _Refused(
            f"quarantine copy {old_path} has BLAKE3 {incoming.blake3} ({incoming.size} bytes), "
            f"the ledger says {expected[0]} ({expected[1]} bytes): not released; run "
            "`dockd sweep fixity`"
        )
    published: PurePosixPath | None = None
    try:
        published = store.publish(cfg.store.root, incoming, target, taken=_taken(ctx, file_id))
        _commit(ctx, file_id, old_path, published, device_id, number, who, reason)
    except BaseException:
        incoming.discard()
        if published is not None:
            store.unpublish(cfg.store.root, published)
        store.settle(incoming)
        raise
    store.settle(incoming)
    with contextlib.suppress(OSError):  # the row is on the store copy: this is tidying
        source.unlink()
        store.fsync_dir(source.parent)
        _prune(cfg.store.quarantine_root, source.parent)
    return published.as_posix()


def _stage(root: Path, source: Path) -> store.Incoming:
    """The quarantine file as a store temporary, hashed: a hard link, else a copy."""
    tmp = store.incoming_dir(root) / f"{owner_tag()}.part"
    try:
        os.link(source, tmp)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            return store.copy_into_incoming(root, fd, buffer_size=1 << 20)
        finally:
            os.close(fd)
    try:
        digest = store.hash_stored(tmp)
        size = tmp.stat().st_size
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return store.Incoming(path=tmp, size=size, blake3=digest)


def _taken(ctx: Context, file_id: int) -> Callable[[PurePosixPath], bool]:
    """A path some other row of this station holds (store_path is unique per station)."""

    def taken(p: PurePosixPath) -> bool:
        with ctx.ledger.read() as s:
            q = select(Recording.id).where(
                Recording.station == ctx.config.station.id,
                Recording.store_path == p.as_posix(),
                Recording.id != file_id,
            )
            return s.scalar(q.limit(1)) is not None

    return taken


def _commit(
    ctx: Context,
    file_id: int,
    old_path: str,
    published: PurePosixPath,
    device_id: int,
    number: str,
    who: attribution.Attribution,
    reason: str,
) -> None:
    """Re-point the row and audit it, in one transaction, after the store copy is safe."""
    officer_id = who.officer.id if who.officer is not None else None
    with ctx.ledger.session() as s:
        row = s.get_one(Recording, file_id, with_for_update=True)
        stored = row.state == FileState.STORED
        if row.store_path != old_path or not row.in_quarantine or not stored:
            raise _Refused(f"file {file_id} changed while it was being released")
        old = audit.file_snapshot(row, ("store_path", "device_ref", "officer_id"))
        old_flags = row.flags
        row.store_path = published.as_posix()
        row.device_id, row.device_ref, row.officer_id = device_id, number, officer_id
        row.unregistered = row.device_conflict = False
        row.badge_mismatch = who.badge_mismatch
        row.expires_at = None  # the next retention sweep works it out, as after an ingest
        audit.record_file_change(
            s,
            row,
            at=ctx.clock.now(),
            actor=ctx.actor,
            action="file.release",
            changed=("store_path", "device_ref", "officer_id"),
            details={
                "reason": reason,
                "device": number,
                "old": {**old, "store_path": f"quarantine/{old_path}", "flags": old_flags},
                "flags": row.flags,
            },
        )


def _prune(root: Path, directory: Path) -> None:
    """Remove directories the move emptied, up to (not including) the quarantine root."""
    root = root.resolve()
    current = directory.resolve()
    while current != root and current.is_relative_to(root):
        try:
            current.rmdir()
        except OSError:
            return
        current = current.parent
