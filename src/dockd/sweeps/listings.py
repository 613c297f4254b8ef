"""What the retention sweep is about to take, and what the trash holds: read, never changed.

``upcoming`` is ``dockd sweep upcoming``: the stored files the sweep will trash
within a number of days (or would, but for a hold) and the trashed ones it will
purge, each decided as the sweep decides. ``trash_list`` is ``dockd trash list``.
Times are ISO 8601 in the station's time zone. ``counted_from`` says which clock a
retention was counted from: ``recorded`` (the recorder's) or ``ingested`` (the
station's, when the recording time is not trusted or the floor from ingest decides).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from dockd.context import Context
from dockd.ledger.models import FileState, Recording
from dockd.policy import adapter as pledger


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
        row: Recording,
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

    with ctx.ledger.read() as s:
        # the indexed expiry first, then the files whose expiry is not computed yet
        for due in (Recording.expires_at <= horizon, Recording.expires_at.is_(None)):
            for row in s.scalars(
                select(Recording).where(due, Recording.state == FileState.STORED, here)
            ):
                facts, _, r = pledger.retention_now(s, row, ctx.config.retention)
                if r.expires_at > horizon:
                    continue
                holds = pledger.holds_touching(s, facts)
                held_by = ",".join(f"#{h.id}" for h in holds)
                action = Coming.HELD if holds else Coming.TRASH
                add(row, action, r.expires_at, r.category, r.rule, held_by, r.counted_from)
        for row in s.scalars(
            select(Recording).where(
                Recording.trashed_at <= horizon - grace, Recording.state == FileState.TRASHED, here
            )
        ):
            assert row.trashed_at is not None
            since = row.trashed_at.astimezone(tz).isoformat()
            when = max(row.trashed_at + grace, now)
            # Asked as the sweep will ask it then: a corrected time, a new case or a
            # hold since the file was trashed puts it back instead of purging it.
            v = pledger.verdict_now(s, row, ctx.config.retention, when)
            held = ",".join(f"#{h}" for h in v.held_by)
            r = v.retention
            if v.delete:
                rule = f"in the trash since {since}"
                add(row, Coming.PURGE, when, r.category, rule, "", r.counted_from)
            else:
                add(row, Coming.RESTORE, when, r.category, v.why, held, r.counted_from)
    out.sort(key=lambda d: (d["when"], d["file_id"]))
    return out


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
