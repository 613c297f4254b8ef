"""The retention sweep: expired, unheld files go to the trash, and later for good.

``run_retention`` reads as its phases::

    refresh expires_at (new files, closed cases, a changed policy)
    -> trash: expired by the indexed ``(state, expires_at)``, in batches; each file
       re-decided (holds first, then retention) inside the transaction that moves it
    -> purge: trashed longer than the grace period; re-decided again; a file
       that is held or no longer expired is restored instead

Only the files that expire are read, so the cost follows what expires, not the
size of the ledger; a batch of ``[retention] batch_size`` files is one transaction,
one read of their facts and holds, one fsync per directory touched and one write of
their audit events. Each trash, purge and restore is an audit event carrying the
file's hash, path, the policy fingerprint and the rule that decided it. Bringing a
file back (here, or by a person) is :mod:`dockd.sweeps.trash`; what the sweep is
about to take is listed by :mod:`dockd.sweeps.listings`. The purge phase is
:mod:`dockd.sweeps.purge`, and what the phases share (the report, the pass)
:mod:`dockd.sweeps.retention_pass`.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from dockd.context import Context
from dockd.ledger import audit
from dockd.ledger.models import Case, FileState, Recording
from dockd.policy import adapter as pledger
from dockd.policy.holds import Verdict
from dockd.policy.retention import NEVER, policy_digest
from dockd.sweeps import locations as loc
from dockd.sweeps.fixity import FixityStatus, record_status
from dockd.sweeps.purge import purge_batch
from dockd.sweeps.retention_pass import Alert, Pass, RetentionReport
from dockd.sweeps.runs import (
    alert_once,
    audit_run,
    last_run,
    require_store,
    sweep_run,
)
from dockd.sweeps.trash import Action, Item

log = structlog.get_logger("dockd.sweeps.retention")


# ---------------------------------------------------------------------------- the sweep


def run_retention(ctx: Context, *, dry_run: bool = False) -> RetentionReport:
    """One retention sweep. A dry run decides exactly the same and changes nothing."""
    digest = policy_digest(ctx.config.retention)
    with sweep_run(ctx, "retention", dry_run=dry_run) as run:
        report = RetentionReport(run.id, dry_run, digest)
        now = ctx.clock.now()
        require_store(  # every night it stays away counts on the alert
            ctx,
            "retention",
            "did nothing; mount the store disk, the next sweep catches up",
            fold=True,
        )
        trash = loc.trash_root(ctx.config) if dry_run else loc.check_trash(ctx.config)
        p = Pass(ctx, run, report, now, trash)
        _refresh(p)
        ctx.progress.begin("retention: trash", None)  # batches: the count is not known
        for ids in _keyset_batches(ctx, Recording.expires_at, now, FileState.STORED):
            ctx.check_stop()
            _trash_batch(p, ids)
            _stepped(ctx, ids)
            run.heartbeat(phase="trash", **report.counts())
        grace = timedelta(days=ctx.config.retention.trash_grace_days)
        ctx.progress.begin("retention: purge", None)
        for ids in _keyset_batches(ctx, Recording.trashed_at, now - grace, FileState.TRASHED):
            ctx.check_stop()
            purge_batch(p, ids)
            _stepped(ctx, ids)
            run.heartbeat(phase="purge", **report.counts())
        run.summary = report.counts()
        if not dry_run:
            audit_run(ctx, run, "sweep.retention", report.counts())
    report.status = run.status
    return report


def _stepped(ctx: Context, ids: list[int]) -> None:
    """A batch done: one step of the progress bar per file of it."""
    for _ in ids:
        ctx.progress.step()


# --------------------------------------------------------------------------- 1. refresh


def _policy_changed(ctx: Context, digest: str) -> bool:
    prev = last_run(ctx, "retention")
    if prev is None or not prev.summary:
        return False
    return bool(json.loads(prev.summary).get("policy", digest) != digest)


def _ids(s: Session, q: Select[int], after: int, limit: int) -> list[int]:
    return list(s.scalars(q.where(Recording.id > after).order_by(Recording.id).limit(limit)))


def _refresh_batches(ctx: Context, changed: bool) -> Iterator[list[int]]:
    """Ids of stored files whose expires_at must be (re)computed, in batches."""
    base = select(Recording.id).where(
        Recording.state == FileState.STORED, Recording.station == ctx.config.station.id
    )
    closed = select(Case.case_number).where(Case.closed_at.is_not(None))
    queries = (
        [base]
        if changed
        else [
            base.where(Recording.expires_at.is_(None)),
            base.where(Recording.expires_at == NEVER, Recording.case_number.in_(closed)),
        ]
    )
    size = ctx.config.retention.batch_size
    for q in queries:
        after = 0
        while True:
            with ctx.ledger.read() as s:
                ids = _ids(s, q, after, size)
            if not ids:
                break
            yield ids
            after = ids[-1]


def _refresh(p: Pass) -> None:
    ctx, run, report = p.ctx, p.run, p.report
    policy = ctx.config.retention
    changed = _policy_changed(ctx, report.policy)
    if changed:
        log.info("retention policy changed: recomputing every expiry", policy=report.policy)
    unknown: dict[str, int] = {}
    for ids in _refresh_batches(ctx, changed):
        ctx.check_stop()
        with p.tx() as s:
            for row in s.scalars(select(Recording).where(Recording.id.in_(ids))):
                if run.dry_run:
                    p.seen.add(row.id)
                    v = p.verdict(s, row)
                    r = v.retention
                    if v.delete:
                        report.trashed.append(Item.of(row, Action.TRASH, r, "would be trashed"))
                else:
                    r = pledger.refresh_expiry(s, row, policy)
                if r.category not in policy.categories:
                    unknown[r.category] = unknown.get(r.category, 0) + 1
                report.refreshed += 1
        run.heartbeat(phase="refresh", **report.counts())
    if unknown and not run.dry_run:
        for name, n in sorted(unknown.items()):
            alert_once(
                ctx,
                "retention.unknown_category",
                name,
                f"{n} file(s) carry category {name!r}, which [retention] does not define: they "
                "are kept until it is defined; add the category or fix the files' tags",
            )


# ----------------------------------------------------------------------------- 2. trash


def _keyset_batches(
    ctx: Context, column: InstrumentedAttribute[datetime | None], bound: datetime, state: str
) -> Iterator[list[int]]:
    """Ids of this station's files in ``state`` with ``column <= bound``, by ``column``.

    Keyset pagination on ``(state, column)``: each batch is an index range scan, so the
    cost follows how many files qualify, not the size of the ledger (oldest first).
    """
    size = ctx.config.retention.batch_size
    last: tuple[datetime, int] | None = None
    while True:
        q = (
            select(Recording.id, column)
            .where(
                column <= bound,
                Recording.state == state,
                Recording.station == ctx.config.station.id,
            )
            .order_by(column, Recording.id)
            .limit(size)
        )
        if last is not None:
            q = q.where(column >= last[0], tuple_(column, Recording.id) > tuple_(*last))
        with ctx.ledger.read() as s:
            rows = [(i, t) for i, t in s.execute(q) if t is not None]
        if not rows:
            return
        yield [i for i, _ in rows]
        last = (rows[-1][1], rows[-1][0])


def _trash_batch(p: Pass, ids: list[int]) -> None:
    """Trash a batch of expired files in one transaction, each decided again under the
    ledger's write lock. The files are moved, every directory they left or entered is
    fsynced once, then their rows and audit events (one per file) commit together: a
    file is ``trashed`` in the ledger only once its move is durable. If the transaction
    does not commit, every file moved is put back; if the process dies before, the next
    sweep finds them in the trash (:func:`~dockd.sweeps.locations.already_in_trash`)."""
    ctx, report = p.ctx, p.report
    moved: list[tuple[Path, Path]] = []
    alerts: list[Alert] = []
    unsynced: set[Path] = set()  # directories changed: each fsynced once, before the commit
    # the ledger did not take them: ``p.batch`` puts the files back
    with p.batch(moved, alerts), p.tx() as s:
        rows, facts = p.take(s, [i for i in ids if i not in p.seen], FileState.STORED)
        done: list[tuple[Recording, Verdict, Path]] = []
        for row in rows:
            v = facts.verdict(row.id, ctx.config.retention, p.now)
            if not v.delete:
                stale = row.expires_at != v.retention.expires_at
                if stale and not v.held_by and not p.run.dry_run:
                    row.expires_at = v.retention.expires_at  # stale: a tag or case changed
                report.kept.append(Item.of(row, Action.KEEP, v.retention, v.why))
                continue
            if p.run.dry_run:
                report.trashed.append(Item.of(row, Action.TRASH, v.retention, "would be trashed"))
                continue
            src = loc.stored_path(ctx.config, row)
            rel = loc.rel_path(row)
            try:
                loc.makedirs(p.trash, rel.parent, unsynced=unsynced)
                found = None if src.exists() else loc.already_in_trash(p.trash, row)
                dst = found or loc.unique_target(p.trash / rel, row.id)
                if found is None:
                    os.rename(src, dst)
            except OSError as exc:
                alert = _not_moved(p, s, row, src, exc)
                alerts.append(alert)
                report.problems.append(Item.of(row, Action.PROBLEM, v.retention, alert[2]))
                continue
            moved.append((src, dst))
            done.append((row, v, dst))
        loc.fsync_dirs(unsynced | {path.parent for pair in moved for path in pair})
        events = [_trashed(p, row, v, dst) for row, v, dst in done]
        audit.record_many(s, events)
        report.trashed.extend(Item.of(row, Action.TRASH, v.retention) for row, v, _ in done)


def _trashed(p: Pass, row: Recording, v: Verdict, dst: Path) -> audit.Event:
    """The file is durably in the trash: drop its case links, set its row; its event."""
    unlinked = loc.drop_case_links(p.ctx.config, row, dst)
    row.state = FileState.TRASHED
    row.trashed_at = p.now
    row.trash_path = dst.relative_to(p.trash).as_posix()
    purge_after = p.now + timedelta(days=p.ctx.config.retention.trash_grace_days)
    return audit.file_change(
        row,
        p.now,
        p.ctx.actor,
        "file.trash",
        ("state", "trashed_at", "trash_path"),
        {
            "hash": {"blake3": row.blake3},
            "path": row.store_path,
            "trash_path": row.trash_path,
            "policy": p.report.policy,
            "category": v.retention.category,
            "rule": v.retention.rule,
            "expired_at": v.retention.expires_at.isoformat(),
            "purge_after": purge_after.isoformat(),
            "case_links_removed": unlinked,
            "sweep_run": p.run.id,
        },
    )


def _not_moved(p: Pass, s: Session, row: Recording, src: Path, exc: OSError) -> Alert:
    """The alert for a file the sweep could not move (a missing one flagged as fixity would)."""
    if not isinstance(exc, FileNotFoundError):
        note = f"cannot move {src} to the trash: {exc.strerror or exc}"
        if exc.errno == errno.EXDEV:
            note += "; the trash must be on the same filesystem as the store"
        return ("retention.move_failed", row.store_path, note)
    if row.fixity_status != FixityStatus.MISSING:
        note = f"not in the store at {src} when the retention sweep came to trash it"
        record_status(s, p.ctx, row, FixityStatus.MISSING, at=p.now, run_id=p.run.id, note=note)
    return (
        "fixity.missing",
        row.store_path,
        f"file {row.id} ({row.store_path}, BLAKE3 {row.blake3}) is expired but is not in the "
        f"store at {src}: it was not trashed; find out where it went",
    )
