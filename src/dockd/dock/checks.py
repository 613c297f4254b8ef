"""The device check at dock (R13): storage, clock, officer, summed up on the session.

The pipeline flags each file (``clock-suspect``) and records the recorder's
capacity and free space on the session row; this module turns that into one
note on the session, one log event and, where a person must act, one alert:

* clock-suspect files: the recorder's date and time must be set right; the alert
  names each check that failed with its evidence, and the retime command (with the
  offset, when the recorder's time file measured it);
* stored files with no officer: the device must be assigned (R1);
* little free space left on the recorder.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select

from dockd.context import Context
from dockd.ingest import clockcheck
from dockd.ingest.outcome import SessionResult
from dockd.ingest.session import add_note, session_alert
from dockd.ledger.models import DockSession, Recording

log = structlog.get_logger("dockd.dock")


@dataclass(frozen=True)
class DeviceCheck:
    """What the check found on one session."""

    capacity_bytes: int | None = None
    free_bytes: int | None = None
    clock_suspect: tuple[str, ...] = ()
    no_officer: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def free_percent(self) -> float | None:
        if not self.capacity_bytes or self.free_bytes is None:
            return None
        return 100.0 * self.free_bytes / self.capacity_bytes


def fat_space(devnode: str) -> tuple[int | None, int | None]:
    """(capacity, free) in bytes from a FAT boot sector and its FSInfo sector.

    For FUSE helpers that do not answer statfs (fusefat reports zeros). Free space
    is known only on FAT32, from the FSInfo free-cluster count the recorder keeps.
    """
    try:
        fd = os.open(devnode, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        boot = os.pread(fd, 512, 0)
        if len(boot) < 512 or boot[510:512] != b"\x55\xaa":
            return None, None
        bps, spc, reserved, nfats, root_entries, total16, fatsz16 = struct.unpack_from(
            "<HBHBHHxH", boot, 11
        )
        total32, fatsz32, fsinfo = (
            struct.unpack_from("<I", boot, 32)[0],
            struct.unpack_from("<I", boot, 36)[0],
            struct.unpack_from("<H", boot, 48)[0],
        )
        if bps not in (512, 1024, 2048, 4096) or spc == 0 or nfats == 0:
            return None, None
        total = total16 or total32
        fatsz = fatsz16 or fatsz32
        root_sectors = (root_entries * 32 + bps - 1) // bps
        clusters = (total - reserved - nfats * fatsz - root_sectors) // spc
        cluster_bytes = bps * spc
        capacity = clusters * cluster_bytes if clusters > 0 else None
        free: int | None = None
        if fatsz16 == 0 and 0 < fsinfo < reserved:
            info = os.pread(fd, 512, fsinfo * bps)
            if (
                len(info) == 512
                and info[0:4] == b"RRaA"
                and info[484:488] == b"rrAa"
                and (count := struct.unpack_from("<I", info, 488)[0]) <= clusters
            ):
                free = count * cluster_bytes
        return capacity, free
    except (OSError, struct.error):
        return None, None
    finally:
        os.close(fd)


def volume_space(mountpoint: Path, devnode: str | None) -> tuple[int | None, int | None]:
    """Capacity and free space of a docked recorder: statfs, else its FAT header."""
    with contextlib.suppress(OSError):
        vfs = os.statvfs(mountpoint)
        if vfs.f_blocks > 0:
            return vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize
    return fat_space(devnode) if devnode else (None, None)


def record_space(ctx: Context, session_id: int, capacity: int | None, free: int | None) -> None:
    """Put the dock's figures on the session where statfs gave the pipeline none."""
    with ctx.ledger.session() as s:
        row = s.get_one(DockSession, session_id)
        if not row.fs_capacity_bytes and capacity:
            row.fs_capacity_bytes, row.fs_free_bytes = capacity, free


def _examples(paths: tuple[str, ...], n: int = 5) -> str:
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more


def check_session(ctx: Context, result: SessionResult, low_free_percent: float) -> DeviceCheck:
    """Sum up one finished session; append the findings to the session's notes."""
    with ctx.ledger.read() as s:
        row = s.get_one(DockSession, result.session_id)
        capacity, free = row.fs_capacity_bytes, row.fs_free_bytes
        offset = row.clock_offset_s
        files = list(
            s.execute(
                select(
                    Recording.source_path,
                    Recording.clock_suspect,
                    Recording.officer_id,
                    Recording.clock_findings,
                    Recording.id,
                )
                .where(Recording.session_id == result.session_id)
                .order_by(Recording.id)
            )
        )
    suspect = tuple(p for p, cs, _, _, _ in files if cs)
    no_officer = (
        tuple(p for p, _, off, _, _ in files if off is None) if result.device_number else ()
    )
    check = DeviceCheck(capacity, free, suspect, no_officer)
    notes: list[str] = []
    if suspect:
        findings = {p: json.loads(f) for p, cs, _, f, _ in files if cs and f}
        kinds = Counter(x["check"] for found in findings.values() for x in found)
        first = next(iter(findings.items()), None)
        evidence = f"; e.g. {first[0]}: {first[1][0]['evidence']}" if first else ""
        what = ", ".join(f"{k} ({n})" for k, n in sorted(kinds.items()))
        notes.append(
            f"{len(suspect)} file(s) clock-suspect [{what}]: {_examples(suspect)}; "
            "set the recorder's date and time"
        )
        log.warning(
            "clock suspect",
            files=len(suspect),
            checks=dict(kinds),
            clock_offset_s=offset,
            examples=list(suspect[:5]),
            session_id=result.session_id,
        )
        fix = _retime_command(result.session_id, offset, files)
        message = (
            f"recorder {result.device_ref}: {len(suspect)} file(s) of dock session "
            f"{result.session_id} have recording times its clock got wrong [{what}]"
            f"{evidence}; set the recorder's clock, then correct the times with {fix}"
        )
        kind = "device.clock_suspect"
        session_alert(
            ctx,
            result,
            kind,
            message,
            severity="warning",
            files=list(suspect),
            checks=dict(kinds),
            clock_offset_s=offset,
            findings={p: findings[p] for p in list(findings)[:20]},
        )
    if no_officer:
        notes.append(
            f"{len(no_officer)} file(s) stored with no officer: device {result.device_ref} "
            "had no officer assigned at their recording time"
        )
        log.warning("files without officer", files=len(no_officer), session_id=result.session_id)
        message = (
            f"recorder {result.device_ref} had no officer assigned when {len(no_officer)} file(s) "
            f"of dock session {result.session_id} were recorded; record who wore it with "
            "`dockd assign` and tag the files"
        )
        kind = "device.no_officer"
        session_alert(ctx, result, kind, message, severity="warning", files=list(no_officer))
    pct = check.free_percent
    if pct is not None and pct < low_free_percent:
        notes.append(f"recorder storage nearly full: {pct:.1f}% free of {capacity} bytes")
        log.warning(
            "recorder storage nearly full",
            free_percent=round(pct, 1),
            capacity_bytes=capacity,
            free_bytes=free,
            session_id=result.session_id,
        )
    if notes:
        append_note(ctx, result.session_id, "; ".join(notes))
    return DeviceCheck(capacity, free, suspect, no_officer, tuple(notes))


def _retime_command(session_id: int, offset: float | None, files: list[Any]) -> str:
    """The correction the time file measured, for the files it fits: the whole session
    when it fits all of them, else those files by id; without one, the command's form."""
    timed = [
        fid
        for _, _, _, found, fid in files
        if found and any(x["check"] == clockcheck.Check.TIME_FILE for x in json.loads(found))
    ]
    if offset is None or not timed:
        return "`dockd recordings retime ... --reason ...`"
    by = clockcheck.signed(timedelta(seconds=-offset))
    which = f"--session {session_id}" if len(timed) == len(files) else " ".join(map(str, timed))
    return f"`dockd recordings retime {which} --offset {by} --reason ...`"


def append_note(ctx: Context, session_id: int, note: str) -> None:
    with ctx.ledger.session() as s:
        add_note(s.get_one(DockSession, session_id), note)
