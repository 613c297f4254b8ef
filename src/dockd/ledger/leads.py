"""Each clip's lead: the latest end among its device's earlier clips, kept in its row
(R12, issue 16).

A device's video and audio clips, in (recording start, id) order, are one footage
line. A clip's *lead* is the latest end (its start when the end is unknown) of the
clips before it, and the first of them to end then: ``lead_end``, ``lead_id``. A
break in the footage can only come before a clip that starts after its lead ends,
and it runs from the lead's end. The gaps report (and the search's gap flag) read
the breaks of a month from these two columns through a partial index, instead of
running a window over every clip of the month (400,000 at ten million files).

The leads are kept right where rows change, in the same transaction, whatever the
code that changes them: the ledger's sessions (:func:`track`) recompute the leads of
every device whose clips were added, moved in time, moved to another device or
removed, from the first clip concerned on, until a clip's stored lead is already
right (nothing after it changes). On PostgreSQL one device's leads are recomputed
by one transaction at a time (an advisory lock), so two stations taking the same
recorder's clips at once cannot leave a lead computed without the other's clips.
Rows written past the ORM (the bench's fill, the migration that brought the leads)
are set by :func:`relead_all`, the same rule as one set-based statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    event,
    func,
    inspect,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import Update

from dockd.ledger.models import Recording

R = Recording
CLIPS = ("video", "audio")  # what a footage line (and a gap) is made of
Key = tuple[datetime, int]  # (recorded_start, id): a clip's place in its device's line
Lead = tuple[datetime, int] | None  # (lead_end, lead_id); None before the first clip
_MOVING = ("device_ref", "recorded_start", "recorded_end", "kind")  # what changes a line
_BATCH = 2000  # clips read per statement of a walk
_PENDING = "dockd_leads"  # session.info: the places changed since the last flush
_FIRST = datetime.min.replace(tzinfo=UTC)  # before every clip


def is_clip() -> ColumnElement[bool]:
    """A video or audio clip, written as ``ix_files_device_line`` is built (its partial
    predicate, the kinds inline): so the databases see that a line's walk may read it,
    and no other query does (SQLite took it for the usage reports' grouping by device,
    then read the table for every row)."""
    return R.kind.in_([literal_column(f"'{k}'") for k in CLIPS])


def end_of() -> ColumnElement[datetime]:
    """The end of a recording, its start when the end is unknown."""
    return func.coalesce(R.recorded_end, R.recorded_start)


def following(lead: Lead, end: datetime, file_id: int) -> Lead:
    """The lead of the clip after one that ends at ``end``, given that one's lead: a
    clip ending later than its lead takes the lead; one ending at the same time does
    not (the first to end then keeps it)."""
    if lead is None or end > lead[0]:
        return end, file_id
    return lead


def relead(conn: Connection, device: str, since: Key | None, through: Key | None) -> int:
    """Recompute the leads of ``device``'s clips from the place ``since`` on (None:
    from its first clip), walking past ``through`` (None: to its last clip) only until
    a clip's stored lead is already right. The number of rows updated."""
    line = and_(R.device_ref == device, is_clip())
    lead: Lead = None
    if since is not None:
        start, file_id = since
        before = conn.execute(
            select(R.id, end_of(), R.lead_end, R.lead_id)
            .where(
                line,
                R.recorded_start <= start,
                or_(R.recorded_start < start, R.id < file_id),
            )
            .order_by(R.recorded_start.desc(), R.id.desc())
            .limit(1)
        ).first()
        if before is not None:
            lead = following(_lead(before[2], before[3]), before[1], before[0])
    clips = (
        select(R.recorded_start, R.id, end_of(), R.lead_end, R.lead_id)
        .where(line)
        .order_by(R.recorded_start, R.id)
        .limit(_BATCH)
    )
    at = since
    updated = 0
    while True:
        q = clips
        if at is not None:
            start, file_id = at
            q = q.where(R.recorded_start >= start, or_(R.recorded_start > start, R.id >= file_id))
        rows = conn.execute(q).all()
        changes: list[dict[str, Any]] = []
        done = False
        for start, file_id, end, lead_end, lead_id in rows:
            if _lead(lead_end, lead_id) != lead:
                changes.append(
                    {
                        "b_id": file_id,
                        "lead_end": lead[0] if lead else None,
                        "lead_id": lead[1] if lead else None,
                    }
                )
            elif through is not None and (start, file_id) > through:
                done = True
                break
            lead = following(lead, end, file_id)
        if changes:
            conn.execute(_SET, changes)
            updated += len(changes)
            _sync(conn, changes)
        if done or len(rows) < _BATCH:
            return updated
        last = rows[-1]
        at = (last[0], last[1] + 1)  # the next clip: ids are whole numbers


def _lead(end: datetime | None, file_id: int | None) -> Lead:
    return (end, file_id) if end is not None and file_id is not None else None


_SET = (
    update(R)
    .where(R.id == bindparam("b_id"))
    .values(lead_end=bindparam("lead_end"), lead_id=bindparam("lead_id"))
    .execution_options(synchronize_session=False)
)


def _sync(conn: Connection, changes: list[dict[str, Any]]) -> None:
    """Rows of the flushing session that were just updated carry their new leads (its
    sessions do not expire them on commit)."""
    session = conn.info.get(_PENDING)
    if not isinstance(session, Session):
        return
    for change in changes:
        row = session.identity_map.get(session.identity_key(R, change["b_id"]))
        if row is not None:
            set_committed_value(row, "lead_end", change["lead_end"])
            set_committed_value(row, "lead_id", change["lead_id"])


def relead_all(conn: Connection) -> int:
    """Every clip's lead computed afresh in one statement, where rows were written past
    the ORM (the bench's fill, a migration); the rows changed (:func:`bulk_statements`).
    """
    return sum(int(conn.execute(stmt).rowcount) for stmt in bulk_statements())


def bulk_statements() -> tuple[Update, Update]:
    """The statements of :func:`relead_all`: every clip's lead set, and the lead of a
    row that is no longer a clip (its kind changed past the ORM) cleared.

    The rule as windows over each device's line: the latest end so far, inclusive
    (``m``); the clip that first reached each such value (the first of its run, as
    ``m`` never falls); a clip's lead is the previous clip's ``m`` and that clip. Set
    based, as a bulk update is fastest on both databases (walking ten million clips
    one device at a time rewrote each row on its own). Constants only (no bound
    values): a bulk load may run them on its raw connection.
    """
    order = (R.recorded_start, R.id)
    clip = is_clip()
    running = (
        select(
            R.id,
            R.device_ref,
            R.recorded_start,
            func.max(end_of()).over(partition_by=R.device_ref, order_by=order, rows=(None, 0))
            .label("m"),
        )
        .where(clip)
        .subquery("running")
    )  # fmt: skip
    r = running.c
    held = select(
        r.id,
        r.device_ref,
        r.recorded_start,
        r.m,
        func.first_value(r.id)
        .over(partition_by=(r.device_ref, r.m), order_by=(r.recorded_start, r.id))
        .label("holder"),
    ).subquery("held")
    h = held.c
    in_line = (h.recorded_start, h.id)
    led = select(
        h.id,
        func.lag(h.m).over(partition_by=h.device_ref, order_by=in_line).label("lead_end"),
        func.lag(h.holder).over(partition_by=h.device_ref, order_by=in_line).label("lead_id"),
    ).subquery("led")
    set_all = (
        update(R)
        .where(
            R.id == led.c.id,
            or_(
                R.lead_end.is_distinct_from(led.c.lead_end),
                R.lead_id.is_distinct_from(led.c.lead_id),
            ),
        )
        .values(lead_end=led.c.lead_end, lead_id=led.c.lead_id)
    )
    clear = (
        update(R)
        .where(~clip, or_(R.lead_end.is_not(None), R.lead_id.is_not(None)))
        .values(lead_end=null(), lead_id=null())
    )
    return set_all, clear


# --------------------------------------------------------------- kept right at each flush


def track(factory: sessionmaker[Session]) -> None:
    """Keep the leads of every session ``factory`` makes right at each flush."""
    event.listen(factory, "before_flush", _before_flush)
    event.listen(factory, "after_flush", _after_flush)


def _places(session: Session) -> set[tuple[str, Key]]:
    found: set[tuple[str, Key]] = session.info.setdefault(_PENDING, set())
    return found


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    """Where the rows changed or removed were before: their old places."""
    for row in (*session.dirty, *session.deleted):
        if not isinstance(row, Recording):
            continue
        state = inspect(row)
        history = {name: state.attrs[name].history for name in _MOVING}
        if row not in session.deleted and not any(h.has_changes() for h in history.values()):
            continue
        old = {name: _before(h) for name, h in history.items()}
        if old["kind"] in CLIPS and old["device_ref"] is not None and state.identity:
            # a start not loaded (an expired row): the line is walked from its beginning
            start = old["recorded_start"] or _FIRST
            _places(session).add((old["device_ref"], (start, state.identity[0])))


def _before(history: Any) -> Any:
    if history.deleted:
        return history.deleted[0]
    return history.unchanged[0] if history.unchanged else None


def _after_flush(session: Session, _context: Any) -> None:
    """The new places of the rows added or changed, then every line concerned walked;
    a row that is no longer a clip (its kind changed) has no lead."""
    places = _places(session)
    left: list[dict[str, Any]] = []
    for row in (*session.new, *session.dirty):
        if not isinstance(row, Recording):
            continue
        state = inspect(row)
        if row in session.dirty and not any(
            state.attrs[name].history.has_changes() for name in _MOVING
        ):
            continue
        if row.kind in CLIPS:
            places.add((row.device_ref, (row.recorded_start, row.id)))
        elif row.lead_end is not None or row.lead_id is not None:
            left.append({"b_id": row.id, "lead_end": None, "lead_id": None})
    if not places and not left:
        return
    session.info[_PENDING] = set()
    conn = session.connection()
    conn.info[_PENDING] = session
    try:
        if left:
            conn.execute(_SET, left)
            _sync(conn, left)
        relead_places(conn, places)
    finally:
        conn.info.pop(_PENDING, None)


def relead_places(conn: Connection, places: Iterable[tuple[str, Key]]) -> None:
    """Recompute the leads of the lines these places are in, each from the first place
    to past the last (a device at a time, in order: the locks are always taken alike)."""
    by_device: dict[str, list[Key]] = defaultdict(list)
    for device, key in places:
        by_device[device].append(key)
    postgresql = conn.dialect.name == "postgresql"
    for device in sorted(by_device):
        keys = by_device[device]
        if postgresql:
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"dockd.leads:{device}"))))
        relead(conn, device, min(keys), max(keys))
