"""What the retention sweep is about to take, and what the trash holds: read, never changed.

``upcoming`` is ``dockd sweep upcoming``: the stored files the sweep will trash
within a number of days (or would, but for a hold) and the trashed ones it will
purge, each decided as the sweep decides; ``upcoming_page`` is one page of it (the
web's), whose files alone are decided. ``trash_list`` is ``dockd trash list``.
Times are ISO 8601 in the station's time zone. ``counted_from`` says which clock a
retention was counted from: ``recorded`` (the recorder's) or ``ingested`` (the
station's, when the recording time is not trusted or the floor from ingest decides).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from dockd.config.policy import RetentionConfig
from dockd.context import Context
from dockd.ledger.models import FileState, Recording
from dockd.policy import adapter as pledger
from dockd.runtime import heap_held

#: The columns of each row of the listing, in order.
COLUMNS = ("file_id", "action", "when", "store_path", "category", "counted_from", "rule",
           "held_by")  # fmt: skip


class Coming(StrEnum):
    """What the sweep will do to a file when its time comes."""

    TRASH = "trash"
    HELD = "held"  # expired by then, but a hold keeps it
    PURGE = "purge"
    RESTORE = "restore"  # in the trash, but the sweep will put it back: it must stay


def upcoming(ctx: Context, days: int) -> list[dict[str, Any]]:
    """What the sweep will take within ``days``: files to trash, trash to purge, every
    candidate decided (:func:`upcoming_page` decides one page of them)."""
    ask = _Ask.of(ctx, days)
    with heap_held(), ctx.ledger.read() as s:
        out = ask.fresh(s, ask.now)
        for q in ask.streams(ask.now):
            for rows in q.batches(s):
                out += ask.decided(s, rows, q.state, ask.now)
        return [e.row for e in sorted(out)]


class Page(NamedTuple):
    """One page of the upcoming deletions, and how many rows the pages hold in all."""

    rows: list[dict[str, Any]]
    total: int
    number: int  # the page given: the last one when the one asked for is past the end


def upcoming_page(
    ctx: Context, days: int, *, number: int, size: int, since: datetime | None = None
) -> Page:
    """Page ``number`` (from 1) of :func:`upcoming`, ``size`` rows a page, of the rows
    whose time is ``since`` or later: the web's report page.

    Only the page's files are decided. The rows are ordered by the expiries the ledger
    keeps (read from the indexes ``(state, station, expires_at, id)`` and ``(state,
    station, trashed_at, id)`` alone, in :func:`upcoming`'s order: by when, then by
    file); the files whose expiry is not computed yet are decided first, to find their
    place. A file whose kept expiry is stale (a tag or a case changed since the sweep
    worked it out) is decided as the sweep will decide it: where that puts it past the
    horizon it is left off its page, and the total counts it until the next sweep puts
    its expiry right.
    """
    ask = _Ask.of(ctx, days)
    start = ask.now if since is None else max(since, ask.now)
    with heap_held(), ctx.ledger.read() as s:
        fresh = ask.fresh(s, start)
        streams = ask.streams(start)
        total = len(fresh) + sum(q.count(s) for q in streams)
        number = min(max(number, 1), max(1, -(-total // size)))
        skip = (number - 1) * size
        page = list(itertools.islice(ask.keys(s, fresh, streams, skip + size), skip, skip + size))
        ids = {i for _, i, _ in page}
        out = [e for e in fresh if e.file_id in ids]
        for state in (FileState.STORED, FileState.TRASHED):
            if ids := {i for _, i, st in page if st == state}:  # none: no four queries
                out += ask.decided(s, _by_id(s, ids), state, start)
        return Page([e.row for e in sorted(out)], total, number)


# A file's place in the listing: its time, its id, and its state (empty: decided already)
_Key = tuple[datetime, int, str]


class _Entry(NamedTuple):
    """One row of the listing, with what it is ordered by: when (now for anything
    overdue), then the file."""

    when: datetime
    file_id: int
    row: dict[str, Any]


@dataclass(frozen=True)
class _Ask:
    """What every file of one listing is asked against: now, the horizon, the policy."""

    now: datetime
    horizon: datetime
    grace: timedelta
    tz: ZoneInfo
    policy: RetentionConfig
    here: ColumnElement[bool]

    @classmethod
    def of(cls, ctx: Context, days: int) -> _Ask:
        now = ctx.clock.now()
        return cls(
            now,
            now + timedelta(days=days),
            timedelta(days=ctx.config.retention.trash_grace_days),
            ctx.config.station.tz,
            ctx.config.retention,
            Recording.station == ctx.config.station.id,
        )

    def entry(
        self,
        row: _File,
        action: Coming,
        when: datetime,
        category: str,
        rule: str,
        held_by: str,
        counted_from: str = "",
    ) -> _Entry:
        at = max(when, self.now)
        return _Entry(
            at,
            row.id,
            {
                "file_id": row.id,
                "action": action,
                "when": at.astimezone(self.tz).isoformat(),
                "store_path": row.store_path,
                "category": category,
                "counted_from": counted_from,
                "rule": rule,
                "held_by": held_by,
            },
        )

    def stored(self, row: _File, facts: pledger.Facts) -> _Entry | None:
        """A stored file: trashed (or held) within the horizon, or None."""
        r = facts.retention(row.id, self.policy)
        if r.expires_at > self.horizon:
            return None
        holds = facts.holds_touching(row.id)
        held_by = ",".join(f"#{h.id}" for h in holds)
        action = Coming.HELD if holds else Coming.TRASH
        return self.entry(row, action, r.expires_at, r.category, r.rule, held_by, r.counted_from)

    def trashed(self, row: _File, facts: pledger.Facts) -> _Entry:
        """A trashed file: purged when its grace ends, or put back."""
        assert row.trashed_at is not None
        since = row.trashed_at.astimezone(self.tz).isoformat()
        when = max(row.trashed_at + self.grace, self.now)
        # Asked as the sweep will ask it then: a corrected time, a new case or a
        # hold since the file was trashed puts it back instead of purging it.
        v = facts.verdict(row.id, self.policy, when)
        held = ",".join(f"#{h}" for h in v.held_by)
        r = v.retention
        if v.delete:
            rule = f"in the trash since {since}"
            return self.entry(row, Coming.PURGE, when, r.category, rule, "", r.counted_from)
        return self.entry(row, Coming.RESTORE, when, r.category, v.why, held, r.counted_from)

    def fresh(self, s: Session, start: datetime) -> list[_Entry]:
        """The stored files whose expiry is not worked out yet (the sweep will), decided:
        the indexes cannot place them. Those due from ``start`` to the horizon."""
        out: list[_Entry] = []
        for rows, facts in _batches(s, _FILES.where(_STORED, _UNKNOWN, self.here)):
            out.extend(e for row in rows if (e := self.stored(row, facts)) and e.when >= start)
        return sorted(out)

    def keys(
        self, s: Session, fresh: list[_Entry], streams: list[_Stream], n: int
    ) -> Iterator[_Key]:
        """The files of the listing in its order, up to the ``n`` first."""
        known = ((e.when, e.file_id, "") for e in fresh)
        return heapq.merge(known, *(q.keys(s, n) for q in streams))

    def decided(self, s: Session, rows: list[_File], state: str, start: datetime) -> list[_Entry]:
        """The ``rows`` (files in ``state``) decided, their facts, cases and holds read in
        three queries: those due from ``start``."""
        facts = pledger.facts_of(s, rows)
        decide = self.stored if state == FileState.STORED else self.trashed
        return [e for row in rows if (e := decide(row, facts)) is not None and e.when >= start]

    def streams(self, start: datetime) -> list[_Stream]:
        """The files of the listing the indexes place, each stream in the listing's
        order: the overdue ones (their time is now) by file, the others by time. From
        ``start`` on: anything overdue is before a ``start`` later than now."""
        stored, trashed = Recording.expires_at, Recording.trashed_at
        out = [
            _Stream(FileState.STORED, stored, start, self.horizon, timedelta(0), self),
            _Stream(FileState.TRASHED, trashed, start - self.grace, self.horizon - self.grace,
                    self.grace, self),
        ]  # fmt: skip
        if start == self.now:
            out += [
                _Stream(FileState.STORED, stored, None, self.now, timedelta(0), self),
                _Stream(FileState.TRASHED, trashed, None, self.now - self.grace, self.grace, self),
            ]
        return out


@dataclass(frozen=True)
class _Stream:
    """Files of one state whose ``column`` is in ``[lo, hi]``, ordered by it (``lo``
    None: the overdue ones, ``column < hi``, all at now, ordered by file)."""

    state: str
    column: InstrumentedAttribute[datetime | None]
    lo: datetime | None
    hi: datetime
    shift: timedelta  # the column plus this is the file's time
    ask: _Ask

    def _where(self) -> list[ColumnElement[bool]]:
        bounds = [self.column < self.hi] if self.lo is None else [
            self.column >= self.lo, self.column <= self.hi
        ]  # fmt: skip
        return [Recording.state == self.state, self.ask.here, *bounds]

    def count(self, s: Session) -> int:
        return s.scalar(select(func.count()).select_from(Recording).where(*self._where())) or 0

    def batches(self, s: Session) -> Iterator[list[_File]]:
        """The stream's files, :data:`_BATCH` at a time, in no order.

        SQLite reads them in one pass over the index range. PostgreSQL's planner
        multiplies the selectivity of the state by that of the time, and the purged
        files keep their old times: it expects a large part of the table and reads all
        of it. There the ids come from the index alone first, then the rows by id."""
        if s.get_bind().dialect.name != "postgresql":
            found = s.connection().execute(
                _FILES.where(*self._where()), execution_options=_IN_BATCHES
            )
            yield from ([_File._make(r) for r in part] for part in found.partitions())
            return
        ids = list(s.connection().scalars(select(Recording.id).where(*self._where())))
        for b in range(0, len(ids), _BATCH):
            yield _by_id(s, ids[b : b + _BATCH])

    def keys(self, s: Session, n: int) -> Iterator[_Key]:
        """The first ``n`` of the stream, in the listing's order."""
        if self.lo is None:  # few (held or not yet swept): read by the index, then sorted
            ids = sorted(s.connection().scalars(select(Recording.id).where(*self._where())))
            return ((self.ask.now, i, self.state) for i in ids[:n])
        q = select(self.column, Recording.id).where(*self._where())
        rows = s.connection().execute(q.order_by(self.column, Recording.id).limit(n)).all()
        return ((t + self.shift, i, self.state) for t, i in rows if t is not None)


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
_STORED = Recording.state == FileState.STORED
_TRASHED = Recording.state == FileState.TRASHED
_UNKNOWN = Recording.expires_at.is_(None)  # not worked out yet: the next sweep will


_IN_BATCHES = {"yield_per": _BATCH}


def _batches(s: Session, q: Select[Any]) -> Iterator[tuple[list[_File], pledger.Facts]]:
    """The rows of ``q`` in batches, each with the policy's facts about them."""
    for part in s.connection().execute(q, execution_options=_IN_BATCHES).partitions():
        rows = [_File._make(r) for r in part]
        yield rows, pledger.facts_of(s, rows)


def _by_id(s: Session, ids: Collection[int]) -> list[_File]:
    return [_File._make(r) for r in s.connection().execute(_FILES.where(Recording.id.in_(ids)))]


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
