"""What the retention sweep is about to take, and what the trash holds: read, never changed.

``upcoming`` is ``dockd sweep upcoming``: the stored files the sweep will trash
within a number of days (or would, but for a hold) and the trashed ones it will
purge, each decided as the sweep decides. ``trash_list`` is ``dockd trash list``.
Times are ISO 8601 in the station's time zone. ``counted_from`` says which clock a
retention was counted from: ``recorded`` (the recorder's) or ``ingested`` (the
station's, when the recording time is not trusted or the floor from ingest decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from dockd.context import Context
from dockd.ledger.models import FileState, Recording
from dockd.policy import adapter as pledger
from dockd.runtime import heap_held


class Coming(StrEnum):
    """What the sweep will do to a file when its time comes."""

    TRASH = "trash"
    HELD = "held"  # expired by then, but a hold keeps it
    PURGE = "purge"
    RESTORE = "restore"  # in the trash, but the sweep will put it back: it must stay


def upcoming(ctx: Context, days: int) -> list[dict[str, Any]]:
    """What the sweep will take within ``days``: files to trash, trash to purge."""
    now = ctx.clock.now()
    horizon = now + timedelta(days=days)
    grace = timedelta(days=ctx.config.retention.trash_grace_days)
    tz = ctx.config.station.tz
    here = Recording.station == ctx.config.station.id
    out: list[dict[str, Any]] = []

    def add(
        row: _File,
        action: Coming,
        when: datetime,
        category: str,
        rule: str,
        held_by: str,
        counted_from: str = "",
    ) -> None:
        out.append(
            {
                "file_id": row.id,
                "action": action,
                "when": max(when, now).astimezone(tz).isoformat(),
                "store_path": row.store_path,
                "category": category,
                "counted_from": counted_from,
                "rule": rule,
                "held_by": held_by,
            }
        )

    policy = ctx.config.retention
    stored = Recording.state == FileState.STORED
    trashed = Recording.state == FileState.TRASHED
    with heap_held(), ctx.ledger.read() as s:
        # the indexed (state, expires_at) first, then the files whose expiry is not
        # computed yet; each batch's facts, cases and holds in three queries
        for due in (Recording.expires_at <= horizon, Recording.expires_at.is_(None)):
            for rows, facts in _batches(s, _FILES.where(stored, due, here)):
                for row in rows:
                    r = facts.retention(row.id, policy)
                    if r.expires_at > horizon:
                        continue
                    holds = facts.holds_touching(row.id)
                    held_by = ",".join(f"#{h.id}" for h in holds)
                    action = Coming.HELD if holds else Coming.TRASH
                    add(row, action, r.expires_at, r.category, r.rule, held_by, r.counted_from)
        q = _FILES.where(trashed, Recording.trashed_at <= horizon - grace, here)
        for rows, facts in _batches(s, q):
            for row in rows:
                assert row.trashed_at is not None
                since = row.trashed_at.astimezone(tz).isoformat()
                when = max(row.trashed_at + grace, now)
                # Asked as the sweep will ask it then: a corrected time, a new case or a
                # hold since the file was trashed puts it back instead of purging it.
                v = facts.verdict(row.id, policy, when)
                held = ",".join(f"#{h}" for h in v.held_by)
                r = v.retention
                if v.delete:
                    rule = f"in the trash since {since}"
                    add(row, Coming.PURGE, when, r.category, rule, "", r.counted_from)
                else:
                    add(row, Coming.RESTORE, when, r.category, v.why, held, r.counted_from)
    out.sort(key=lambda d: (d["when"], d["file_id"]))
    return out


class _File(NamedTuple):
    """The columns of a file the listing and the policy's facts read: a plain row, not
    an entity (thousands of files are listed; loading each as one cost the most)."""

    id: int
    store_path: str
    trashed_at: datetime | None
    officer_id: int | None
    badge_hint: str | None
    recorded_start: datetime
    recorded_end: datetime | None
    category: str | None
    case_number: str | None
    device_ref: str
    ingested_at: datetime
    clock_suspect: bool
    time_source: str


_FILES = select(*(getattr(Recording, name) for name in _File._fields))
_BATCH = 1000  # files per read of their facts: one bound parameter each


def _batches(s: Session, q: Select[Any]) -> Iterator[tuple[list[_File], pledger.Facts]]:
    """The rows of ``q`` in batches, each with the policy's facts about them."""
    result = s.connection().execute(q.execution_options(yield_per=_BATCH))
    for part in result.partitions():
        rows = [_File._make(r) for r in part]
        yield rows, pledger.facts_of(s, rows)


def trash_list(ctx: Context) -> list[dict[str, Any]]:
    """Every file of this station in the trash, oldest first, and when it is purged."""
    grace = timedelta(days=ctx.config.retention.trash_grace_days)
    tz = ctx.config.station.tz
    with ctx.ledger.read() as s:
        return [
            {
                "file_id": r.id,
                "store_path": r.store_path,
                "trash_path": r.trash_path,
                "trashed_at": r.trashed_at.astimezone(tz).isoformat() if r.trashed_at else None,
                "purge_after": (r.trashed_at + grace).astimezone(tz).isoformat()
                if r.trashed_at
                else None,
                "size_bytes": r.size_bytes,
                "blake3": r.blake3,
            }
            for r in s.scalars(
                select(Recording)
                .where(
                    Recording.state == FileState.TRASHED, Recording.station == ctx.config.station.id
                )
                .order_by(Recording.trashed_at, Recording.id)
            )
        ]
