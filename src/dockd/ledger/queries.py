"""Reads with intent names: what auditors and the CLI ask of the ledger.

``row_by_id`` and ``refuse_if_done`` are the two checks before closing something
for good (acknowledging an alert, releasing a hold): it exists, and is not closed yet.

``FILE_FIELDS`` is the stable JSON shape of one recording (listed in docs/auditors.md);
scripts may rely on these names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from dockd.clock import LocalTimes
from dockd.errors import NotFound, UsageError
from dockd.ledger.models import (
    FLAG_COLUMNS,
    Base,
    Device,
    DockSession,
    FileState,
    Officer,
    Recording,
    flag_names,
)
from dockd.runtime import heap_held

Row = TypeVar("Row", bound=Base)

FILE_FIELDS: tuple[str, ...] = (
    "id",
    "station",
    "device",
    "officer",
    "case",
    "case_cause",
    "party",
    "category",
    "access_class",
    "kind",
    "recorded_at",
    "recorded_end",
    "time_source",
    "duration_s",
    "container",
    "video_codec",
    "audio_codec",
    "width",
    "height",
    "size_bytes",
    "blake3",
    "store_path",
    "source_path",
    "ingested_at",
    "session_id",
    "verified",
    "flags",
    "clock_findings",
    "state",
)


@dataclass(frozen=True)
class FileFilter:
    device: str | None = None  # device number (or the quarantine ref of an unregistered one)
    officer: str | None = None  # badge number
    case: str | None = None
    recorded_from: datetime | None = None  # inclusive
    recorded_to: datetime | None = None  # exclusive
    station: str | None = None
    include_removed: bool = False  # trashed and purged files too


# What one recording's JSON form is made of, read as plain columns: a listing of
# thousands of files builds no ORM objects (an officer's month at ten million rows).
_R = Recording
_FILE_COLUMNS = (
    _R.id, _R.station, _R.device_ref, _R.badge_hint, _R.case_number, _R.case_cause,
    _R.party, _R.category, _R.access_class, _R.kind, _R.recorded_start, _R.recorded_end,
    _R.time_source, _R.duration_s, _R.container, _R.video_codec, _R.audio_codec,
    _R.width, _R.height, _R.size_bytes, _R.blake3, _R.store_path, _R.source_path,
    _R.ingested_at, _R.session_id, _R.verified, _R.clock_findings, _R.state,
    *(getattr(_R, name) for name in FLAG_COLUMNS),
)  # fmt: skip


def file_query(f: FileFilter) -> Select[Any]:
    """The rows of :data:`_FILE_COLUMNS` and then the officer's badge of the files ``f``
    selects, in recording order (:func:`file_record` reads them by position)."""
    off = aliased(Officer)
    q = (
        select(*_FILE_COLUMNS, off.badge.label("officer_badge"))
        .outerjoin(off, Recording.officer_id == off.id)
        .order_by(Recording.recorded_start, Recording.id)
    )
    if f.device is not None:
        q = q.where(Recording.device_ref == f.device)
    if f.officer is not None:
        q = q.where(off.badge == f.officer)
    if f.case is not None:
        q = q.where(Recording.case_number == f.case)
    if f.recorded_from is not None:
        q = q.where(Recording.recorded_start >= f.recorded_from)
    if f.recorded_to is not None:
        q = q.where(Recording.recorded_start < f.recorded_to)
    if f.station is not None:
        q = q.where(Recording.station == f.station)
    if not f.include_removed:
        q = q.where(Recording.state == FileState.STORED)
    return q


def file_record(row: Sequence[Any], local: LocalTimes) -> dict[str, Any]:
    """One recording (a row of :func:`file_query`) in its stable JSON form; times in
    ISO 8601 with the station's offset. (Unpacked by position: a listing of thousands
    of rows spends more on named lookups than on its query.)"""
    (
        id_, station, device, badge_hint, case, case_cause, party, category,
        access_class, kind, start, end, time_source, duration_s, container,
        video_codec, audio_codec, width, height, size, digest, store_path,
        source_path, ingested_at, session_id, verified, clock_findings, state,
        *flags, officer_badge,
    ) = row  # fmt: skip
    return {
        "id": id_,
        "station": station,
        "device": device,
        "officer": officer_badge or badge_hint,
        "case": case,
        "case_cause": case_cause,
        "party": party,
        "category": category,
        "access_class": access_class,
        "kind": kind,
        "recorded_at": local.iso(start, "auto"),
        "recorded_end": local.iso(end, "auto"),
        "time_source": time_source,
        "duration_s": duration_s,
        "container": container,
        "video_codec": video_codec,
        "audio_codec": audio_codec,
        "width": width,
        "height": height,
        "size_bytes": size,
        "blake3": digest,
        "store_path": store_path,
        "source_path": source_path,
        "ingested_at": local.iso(ingested_at, "auto"),
        "session_id": session_id,
        "verified": verified,
        "flags": flag_names(flags, size),
        # Why the time is doubted: [{"check": ..., "evidence": ...}] (ingest/clockcheck).
        "clock_findings": json.loads(clock_findings) if clock_findings else [],
        "state": state,
    }


def find_files(session: Session, f: FileFilter, tz: ZoneInfo) -> list[dict[str, Any]]:
    local = LocalTimes(tz)
    # through the session's connection: plain rows, without the ORM's result handling
    with heap_held():
        return [file_record(row, local) for row in session.connection().execute(file_query(f))]


def recent_sessions(session: Session, limit: int = 20) -> Sequence[DockSession]:
    return session.scalars(select(DockSession).order_by(DockSession.id.desc()).limit(limit)).all()


def device_numbers(session: Session) -> list[str]:
    return list(session.scalars(select(Device.number).order_by(Device.number)))


def row_by_id(session: Session, model: type[Row], row_id: int, missing: str) -> Row:
    """The row of ``model`` with this id; :class:`NotFound` saying ``missing`` if none."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(missing)
    return row


def refuse_if_done(done_at: datetime | None, done_by: str | None, what: str) -> None:
    """Refuse to close twice: ``what`` (e.g. "alert 7 was already acknowledged") is
    followed by who did it and when."""
    if done_at is not None:
        raise UsageError(f"{what} by {done_by} at {done_at.isoformat()}")
