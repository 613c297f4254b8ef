"""The policy's ledger adapter: facts read from the ledger in, decisions out.

The decisions stay pure, in :mod:`dockd.policy.retention` and
:mod:`dockd.policy.holds` (an import-linter contract keeps the ledger out of them).
This adapter reads the facts they need with indexed queries (a coarse SQL superset,
then the pure rule decides), hands them to the pure functions, and reads the holds
(which cover a file, which files a hold covers, a hold in words). Writing holds, with
their checks and audit events, is :mod:`dockd.policy.placing`. Sweeps, reports and
commands reach the policy through these two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session

from dockd.config.policy import RetentionConfig
from dockd.errors import NotFound, UsageError
from dockd.ledger.models import Case, Hold, Officer, Recording
from dockd.policy.holds import (
    HoldFacts,
    HoldScope,
    Verdict,
    covers,
    decide,
    normalize_reason,
)
from dockd.policy.retention import (
    UNTRUSTED_SOURCES,
    CaseFacts,
    FileFacts,
    Retention,
    retention_of,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_F = TypeVar("_F", bound="DataclassInstance")

_HOLDS_LOCK = 0x646F636B68  # "dockh": placing a hold and deleting a file never interleave
# No recording is longer than this: widens indexed window queries, the pure rule decides.
_MAX_CLIP = timedelta(days=1)


def serialize_with_holds(session: Session) -> None:
    """Order this transaction against hold placement.

    On SQLite every transaction is ``BEGIN IMMEDIATE`` already, so writers queue;
    on PostgreSQL a transaction-scoped advisory lock does the same for the two
    transactions that matter: placing a hold and taking a file.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _HOLDS_LOCK})


# ------------------------------------------------------------------------------ facts


def file_facts(session: Session, row: Recording) -> FileFacts:
    badges = {row.badge_hint} if row.badge_hint else set()
    if row.officer_id is not None:
        badge = session.scalar(select(Officer.badge).where(Officer.id == row.officer_id))
        if badge:
            badges.add(badge)
    return _facts(FileFacts, row, officer_badges=frozenset(badges))


def case_facts(session: Session, case_number: str | None) -> list[CaseFacts]:
    if not case_number:
        return []
    rows = session.execute(
        select(Case.case_number, Case.category, Case.closed_at).where(
            Case.case_number == case_number
        )
    )
    return [CaseFacts(n, c, closed) for n, c, closed in rows]


def hold_facts(h: Hold) -> HoldFacts:
    return _facts(HoldFacts, h)


def _facts(cls: type[_F], row: object, **derived: Any) -> _F:
    """The facts the pure rules see, read off the row's columns of the same names;
    ``derived`` are those that are not a column of it."""
    names = [n for n in _names(cls) if n not in derived]
    return cls(**{n: getattr(row, n) for n in names}, **derived)


@cache
def _names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    """The fields of ``cls`` (asked once per class, not per file of a listing)."""
    return tuple(f.name for f in fields(cls))


def holds_touching(session: Session, facts: FileFacts, *, active_only: bool = True) -> list[Hold]:
    """Holds that may cover the file (each arm indexed); :func:`covers` decides."""
    arms = [Hold.file_id == facts.id, Hold.device_ref == facts.device_ref]
    if facts.case_number:
        arms.append(Hold.case_number == facts.case_number)
    if facts.officer_badges:
        arms.append(Hold.officer_badge.in_(sorted(facts.officer_badges)))
    q = select(Hold).where(or_(*arms)).order_by(Hold.id)
    if active_only:
        q = q.where(Hold.released_at.is_(None))
    return [h for h in session.scalars(q) if covers(hold_facts(h), facts)]


def retention_now(
    session: Session, row: Recording, policy: RetentionConfig
) -> tuple[FileFacts, list[CaseFacts], Retention]:
    facts = file_facts(session, row)
    cases = case_facts(session, row.case_number)
    return facts, cases, retention_of(facts, cases, policy)


def verdict_now(
    session: Session, row: Recording, policy: RetentionConfig, now: datetime
) -> Verdict:
    """The retention sweep's question for one file, asked of its facts, cases and holds now."""
    facts, cases, _ = retention_now(session, row, policy)
    holds = [hold_facts(h) for h in holds_touching(session, facts)]
    return decide(facts, cases, holds, policy, now)


@dataclass
class Facts:
    """What the policy asks about many files, read in three queries, not three per file:
    their officers' badges, their cases, and the active holds (a station has few)."""

    files: dict[int, FileFacts]
    cases: dict[str, list[CaseFacts]]
    holds: list[Hold]

    def holds_touching(self, file_id: int) -> list[Hold]:
        """:func:`holds_touching` of one of the files (its arms, then :func:`covers`)."""
        f = self.files[file_id]
        return [h for h in self.holds if _touches(h, f) and covers(hold_facts(h), f)]

    def retention(self, file_id: int, policy: RetentionConfig) -> Retention:
        f = self.files[file_id]
        return retention_of(f, self.cases.get(f.case_number or "", []), policy)

    def verdict(self, file_id: int, policy: RetentionConfig, now: datetime) -> Verdict:
        """:func:`verdict_now` of one of the files."""
        f = self.files[file_id]
        holds = [hold_facts(h) for h in self.holds_touching(file_id)]
        return decide(f, self.cases.get(f.case_number or "", []), holds, policy, now)


def _touches(h: Hold, f: FileFacts) -> bool:
    case = bool(f.case_number) and h.case_number == f.case_number
    return (
        h.file_id == f.id
        or h.device_ref == f.device_ref
        or case
        or h.officer_badge in f.officer_badges
    )


class FileRow(Protocol):
    """What :func:`facts_of` reads of a file: a :class:`Recording`, or a lighter row of
    these columns (a listing of thousands of files need not load each as an entity)."""

    @property
    def id(self) -> int: ...
    @property
    def recorded_start(self) -> datetime: ...
    @property
    def recorded_end(self) -> datetime | None: ...
    @property
    def category(self) -> str | None: ...
    @property
    def case_number(self) -> str | None: ...
    @property
    def device_ref(self) -> str: ...
    @property
    def ingested_at(self) -> datetime: ...
    @property
    def clock_suspect(self) -> bool: ...
    @property
    def time_source(self) -> str: ...
    @property
    def officer_id(self) -> int | None: ...
    @property
    def badge_hint(self) -> str | None: ...


def facts_of(session: Session, rows: Sequence[FileRow]) -> Facts:
    """The :class:`Facts` of ``rows`` (a batch: each query has one parameter per row)."""
    officers = {r.officer_id for r in rows if r.officer_id is not None}
    numbers = {r.case_number for r in rows if r.case_number}
    q_badge = select(Officer.id, Officer.badge).where(Officer.id.in_(officers))
    badges: dict[int, str] = {i: b for i, b in session.execute(q_badge)}
    cases: dict[str, list[CaseFacts]] = {}
    q = select(Case.case_number, Case.category, Case.closed_at).where(Case.case_number.in_(numbers))
    for n, c, closed in session.execute(q.order_by(Case.id)) if numbers else ():
        cases.setdefault(n, []).append(CaseFacts(n, c, closed))
    holds = list(session.scalars(select(Hold).where(Hold.released_at.is_(None)).order_by(Hold.id)))
    files = {}
    for r in rows:
        own = {r.badge_hint, badges.get(r.officer_id) if r.officer_id is not None else None}
        files[r.id] = _facts(FileFacts, r, officer_badges=frozenset(b for b in own if b))
    return Facts(files, cases, holds)


def refresh_expiry(session: Session, row: Recording, policy: RetentionConfig) -> Retention:
    """Recompute ``files.expires_at`` from the policy.

    Call it (or set ``expires_at = None`` for the next sweep to do it) whenever a
    file's category, case or recording time changes. It is a derived value, not a
    fact: the audited columns and the policy decide it, so it carries no audit event.
    """
    _, _, r = retention_now(session, row, policy)
    row.expires_at = r.expires_at
    return r


# ------------------------------------------------------------------------------ holds


def list_holds(
    session: Session,
    *,
    include_released: bool = False,
    file_id: int | None = None,
    reason: str | None = None,
    by: str | None = None,
) -> list[Hold]:
    q = select(Hold).order_by(Hold.id)
    if not include_released:
        q = q.where(Hold.released_at.is_(None))
    if reason is not None:
        try:
            q = q.where(Hold.reason == normalize_reason(reason))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if by is not None:
        q = q.where(or_(Hold.placed_by == by, Hold.released_by == by))
    holds = list(session.scalars(q))
    if file_id is not None:
        row = session.get(Recording, file_id)
        if row is None:
            raise NotFound(f"no file with id {file_id}")
        facts = file_facts(session, row)
        holds = [h for h in holds if covers(hold_facts(h), facts)]
    return holds


def covered_files(session: Session, hold: Hold, *, states: tuple[str, ...]) -> list[Recording]:
    """The files a hold covers, in the given states (indexed query, then the pure rule)."""
    q = select(Recording).where(Recording.state.in_(states)).order_by(Recording.id)
    if hold.scope == HoldScope.FILE:
        q = q.where(Recording.id == hold.file_id)
    elif hold.scope == HoldScope.CASE:
        q = q.where(Recording.case_number == hold.case_number)
    elif hold.scope == HoldScope.DEVICE:
        q = q.where(Recording.device_ref == hold.device_ref)
    elif hold.scope == HoldScope.OFFICER:
        ids = list(session.scalars(select(Officer.id).where(Officer.badge == hold.officer_badge)))
        q = q.where(or_(Recording.officer_id.in_(ids), Recording.badge_hint == hold.officer_badge))
    if hold.scope in (HoldScope.DEVICE, HoldScope.OFFICER):
        timed = []
        if hold.window_from is not None:
            timed.append(Recording.recorded_start >= hold.window_from - _MAX_CLIP)
        if hold.window_until is not None:
            timed.append(Recording.recorded_start < hold.window_until)
        # An untrusted time (see policy.holds): covered by when it was ingested.
        doubted = or_(Recording.clock_suspect, Recording.time_source.in_(UNTRUSTED_SOURCES))
        if hold.window_from is not None:
            doubted = and_(doubted, Recording.ingested_at >= hold.window_from)
        q = q.where(or_(and_(*timed), doubted)) if timed else q
    hf = hold_facts(hold)
    return [r for r in session.scalars(q) if covers(hf, file_facts(session, r))]


def hold_target(hold: Hold) -> str:
    """What the hold is on, in words: ``case A-1``, ``device DV-0001``, ..."""
    targets: dict[str, str] = {
        HoldScope.FILE: f"file {hold.file_id}",
        HoldScope.CASE: f"case {hold.case_number}",
        HoldScope.DEVICE: f"device {hold.device_ref}",
        HoldScope.OFFICER: f"officer {hold.officer_badge}",
    }
    return targets.get(hold.scope, hold.scope)


def hold_dict(hold: Hold, tz: ZoneInfo) -> dict[str, Any]:
    """The stable JSON form of a hold (``dockd hold list --format json``)."""

    def t(v: datetime | None) -> str | None:
        return v.astimezone(tz).isoformat() if v else None

    return {
        "id": hold.id,
        "reason": hold.reason,
        "text": hold.reason_text,
        "scope": hold.scope,
        "target": hold_target(hold),
        "file_id": hold.file_id,
        "case_number": hold.case_number,
        "device": hold.device_ref,
        "officer": hold.officer_badge,
        "from": t(hold.window_from),
        "until": t(hold.window_until),
        "placed_at": t(hold.placed_at),
        "placed_by": hold.placed_by,
        "released_at": t(hold.released_at),
        "released_by": hold.released_by,
        "release_reason": hold.release_reason,
        "active": hold.released_at is None,
    }
