"""The retention sweep: expired, unheld files go to the trash, and later for good.

``run_retention`` reads as its phases::

    refresh expires_at (new files, closed cases, a changed policy)
    -> trash: expired by the indexed ``expires_at <= now``; each file re-decided
       (holds first, then retention) inside the transaction that moves it
    -> purge: trashed longer than the grace period; re-decided again; a file
       that is held or no longer expired is restored instead

Only the files that expire are read, so the cost follows what expires, not the
size of the ledger. Each trash, purge and restore is an audit event carrying the
file's hash, path, the policy fingerprint and the rule that decided it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import structlog
from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from dockd.context import Context
from dockd.errors import DockdError, NotFound, UsageError
from dockd.ledger import audit
from dockd.ledger.models import Case, Hold, Recording
from dockd.policy import adapter as pledger
from dockd.policy.holds import Verdict, decide
from dockd.policy.retention import NEVER, Retention, policy_digest
from dockd.sweeps import locations as loc
from dockd.sweeps.runs import Run, alert_once, audit_run, last_run, sweep_run

log = structlog.get_logger("dockd.sweeps.retention")


@dataclass
class Item:
    """One file the sweep acted on (or would act on, in a dry run)."""

    file_id: int
    action: str  # trash | purge | restore | keep | problem
    store_path: str
    blake3: str
    category: str = ""
    rule: str = ""
    note: str = ""
    expires_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionReport:
    run_id: int
    dry_run: bool
    policy: str
    status: str = "running"
    refreshed: int = 0
    trashed: list[Item] = field(default_factory=list)
    purged: list[Item] = field(default_factory=list)
    restored: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)
    problems: list[Item] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "refreshed": self.refreshed,
            "trashed": len(self.trashed),
            "purged": len(self.purged),
            "restored": len(self.restored),
            "kept": len(self.kept),
            "problems": len(self.problems),
        }

    def items(self) -> list[Item]:
        return [*self.trashed, *self.purged, *self.restored, *self.kept, *self.problems]


def _tx(ctx: Context, run: Run) -> contextlib.AbstractContextManager[Session]:
    """A write transaction (the ledger's write lock), or a read one for a dry run."""
    return ctx.ledger.read() if run.dry_run else ctx.ledger.session()


def _station(ctx: Context) -> str:
    return ctx.config.station.id


def _item(row: Recording, action: str, r: Retention | None = None, note: str = "") -> Item:
    return Item(
        file_id=row.id,
        action=action,
        store_path=row.store_path,
        blake3=row.blake3,
        category=r.category if r else "",
        rule=r.rule if r else "",
        note=note,
        expires_at=None if r is None or r.never else r.expires_at.isoformat(),
    )


def _verdict(s: Session, ctx: Context, row: Recording, now: datetime) -> Verdict:
    facts, cases, _ = pledger.retention_now(s, row, ctx.config.retention)
    holds = [pledger.hold_facts(h) for h in pledger.holds_touching(s, facts)]
    return decide(facts, cases, holds, ctx.config.retention, now)


# ---------------------------------------------------------------------------- the sweep


def run_retention(ctx: Context, *, dry_run: bool = False) -> RetentionReport:
    """One retention sweep. A dry run decides exactly the same and changes nothing."""
    digest = policy_digest(ctx.config.retention)
    with sweep_run(ctx, "retention", dry_run=dry_run) as run:
        report = RetentionReport(run.id, dry_run, digest)
        now = ctx.clock.now()
        if not ctx.config.store.root.is_dir():
            _store_unavailable(ctx)
        trash = loc.trash_root(ctx.config) if dry_run else loc.check_trash(ctx.config)
        seen: set[int] = set()
        _refresh(ctx, run, report, now, seen)
        _trash_expired(ctx, run, report, now, trash, seen)
        _purge_trash(ctx, run, report, now, trash)
        run.summary = report.counts()
        if not dry_run:
            audit_run(ctx, run, "sweep.retention", report.counts())
    report.status = run.status
    return report


def _store_unavailable(ctx: Context) -> None:
    root = ctx.config.store.root
    with ctx.ledger.read() as s:
        if (
            s.scalar(
                select(Recording.id)
                .where(Recording.state == "stored", Recording.station == _station(ctx))
                .limit(1)
            )
            is None
        ):
            return  # nothing stored yet: nothing to lose
    ctx.alerts.raise_alert(
        "retention.store_unavailable",
        str(root),
        f"the store {root} is not there (disk not mounted?): the retention sweep did nothing; "
        "mount the store disk, the next sweep catches up",
        severity="critical",
    )
    raise DockdError(f"the store {root} is not a directory; is its disk mounted?")


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
        Recording.state == "stored", Recording.station == _station(ctx)
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


def _refresh(
    ctx: Context, run: Run, report: RetentionReport, now: datetime, seen: set[int]
) -> None:
    policy = ctx.config.retention
    changed = _policy_changed(ctx, report.policy)
    if changed:
        log.info("retention policy changed: recomputing every expiry", policy=report.policy)
    unknown: dict[str, int] = {}
    for ids in _refresh_batches(ctx, changed):
        ctx.check_stop()
        with _tx(ctx, run) as s:
            for row in s.scalars(select(Recording).where(Recording.id.in_(ids))):
                if run.dry_run:
                    seen.add(row.id)
                    v = _verdict(s, ctx, row, now)
                    r = v.retention
                    if v.delete:
                        report.trashed.append(_item(row, "trash", r, "would be trashed"))
                else:
                    r = pledger.refresh_expiry(s, row, policy)
                if r.category not in policy.categories:
                    unknown[r.category] = unknown.get(r.category, 0) + 1
                report.refreshed += 1
        run.heartbeat(phase="refresh", refreshed=report.refreshed)
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

    Keyset pagination on an indexed time column: each batch is an index range scan,
    so the cost follows how many files qualify, not the size of the ledger.
    """
    size = ctx.config.retention.batch_size
    last: tuple[datetime, int] | None = None
    while True:
        q = (
            select(Recording.id, column)
            .where(column <= bound, Recording.state == state, Recording.station == _station(ctx))
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


def _expired_batches(ctx: Context, now: datetime) -> Iterator[list[int]]:
    """Stored files with ``expires_at <= now``, oldest expiry first (index range scan)."""
    return _keyset_batches(ctx, Recording.expires_at, now, "stored")


def _trash_expired(
    ctx: Context,
    run: Run,
    report: RetentionReport,
    now: datetime,
    trash: Path,
    seen: set[int],
) -> None:
    for ids in _expired_batches(ctx, now):
        for file_id in ids:
            ctx.check_stop()
            if file_id in seen:
                continue
            _trash_one(ctx, run, report, now, trash, file_id)
        run.heartbeat(phase="trash", trashed=len(report.trashed))


def _trash_one(
    ctx: Context,
    run: Run,
    report: RetentionReport,
    now: datetime,
    trash: Path,
    file_id: int,
) -> None:
    """Decide again, holding the ledger's write lock, then move; the row follows the file."""
    moved: tuple[Path, Path] | None = None
    alert: tuple[str, str, str] | None = None
    try:
        with _tx(ctx, run) as s:
            pledger.serialize_with_holds(s)
            row = s.get(Recording, file_id, with_for_update=True)
            if row is None or row.state != "stored":
                return
            v = _verdict(s, ctx, row, now)
            if not v.delete:
                stale = row.expires_at != v.retention.expires_at
                if stale and not v.held_by and not run.dry_run:
                    row.expires_at = v.retention.expires_at  # stale: a tag or case changed
                report.kept.append(_item(row, "keep", v.retention, v.why))
                return
            if run.dry_run:
                report.trashed.append(_item(row, "trash", v.retention, "would be trashed"))
                return
            src = loc.stored_path(ctx.config, row)
            rel = loc.rel_path(row)
            try:
                loc.makedirs(trash, rel.parent)
                dst = loc.unique_target(trash / rel, row.id)
                os.rename(src, dst)
            except FileNotFoundError:
                alert = _missing(s, ctx, row, src, now)
                report.problems.append(_item(row, "problem", v.retention, alert[2]))
                return
            except OSError as exc:
                note = f"cannot move {src} to the trash: {exc.strerror or exc}"
                if exc.errno == errno.EXDEV:
                    note += "; the trash must be on the same filesystem as the store"
                alert = ("retention.move_failed", row.store_path, note)
                report.problems.append(_item(row, "problem", v.retention, note))
                return
            moved = (src, dst)
            loc.fsync_dir(src.parent)
            loc.fsync_dir(dst.parent)
            unlinked = loc.drop_case_links(ctx.config, row, dst)
            row.state = "trashed"
            row.trashed_at = now
            row.trash_path = dst.relative_to(trash).as_posix()
            purge_after = now + timedelta(days=ctx.config.retention.trash_grace_days)
            audit.record_file_change(
                s,
                row,
                at=now,
                actor=ctx.actor,
                action="file.trash",
                changed=("state", "trashed_at", "trash_path"),
                details={
                    "hash": {"blake3": row.blake3},
                    "path": row.store_path,
                    "trash_path": row.trash_path,
                    "policy": report.policy,
                    "category": v.retention.category,
                    "rule": v.retention.rule,
                    "expired_at": v.retention.expires_at.isoformat(),
                    "purge_after": purge_after.isoformat(),
                    "case_links_removed": unlinked,
                    "sweep_run": run.id,
                },
            )
            report.trashed.append(_item(row, "trash", v.retention))
    except BaseException:
        if moved is not None:  # the ledger did not take it: put the file back
            with contextlib.suppress(OSError):
                os.rename(moved[1], moved[0])
        raise
    finally:
        if alert is not None:
            alert_once(ctx, *alert)


def _missing(
    s: Session, ctx: Context, row: Recording, src: Path, now: datetime
) -> tuple[str, str, str]:
    """Flag a file the sweep should have moved but could not find (as fixity would)."""
    if row.fixity_status != "missing":
        previous = row.fixity_status
        row.fixity_status = "missing"
        audit.record_file_change(
            s,
            row,
            at=now,
            actor=ctx.actor,
            action="file.fixity",
            changed=("fixity_status",),
            details={
                "path": row.store_path,
                "expected": row.blake3,
                "found": None,
                "previous": previous,
                "note": f"not in the store at {src} when the retention sweep came to trash it",
            },
        )
    return (
        "fixity.missing",
        row.store_path,
        f"file {row.id} ({row.store_path}, BLAKE3 {row.blake3}) is expired but is not in the "
        f"store at {src}: it was not trashed; find out where it went",
    )


# ----------------------------------------------------------------------------- 3. purge


def _due_batches(ctx: Context, now: datetime) -> Iterator[list[int]]:
    """Trashed files whose grace period is over, oldest first."""
    cutoff = now - timedelta(days=ctx.config.retention.trash_grace_days)
    return _keyset_batches(ctx, Recording.trashed_at, cutoff, "trashed")


def _purge_trash(
    ctx: Context, run: Run, report: RetentionReport, now: datetime, trash: Path
) -> None:
    for ids in _due_batches(ctx, now):
        for file_id in ids:
            ctx.check_stop()
            _purge_one(ctx, run, report, now, trash, file_id)
        run.heartbeat(phase="purge", purged=len(report.purged))


def _purge_one(
    ctx: Context,
    run: Run,
    report: RetentionReport,
    now: datetime,
    trash: Path,
    file_id: int,
) -> None:
    alert = _purge_locked(ctx, run, report, now, trash, file_id)
    if alert is not None:
        alert_once(ctx, *alert)


def _purge_locked(
    ctx: Context,
    run: Run,
    report: RetentionReport,
    now: datetime,
    trash: Path,
    file_id: int,
) -> tuple[str, str, str] | None:
    """Purge one file (or restore it when it must stay); returns an alert to raise."""
    alert: tuple[str, str, str] | None = None
    with _tx(ctx, run) as s:
        pledger.serialize_with_holds(s)
        row = s.get(Recording, file_id, with_for_update=True)
        if row is None or row.state != "trashed":
            return None
        v = _verdict(s, ctx, row, now)
        if not v.delete:
            if run.dry_run:
                report.restored.append(
                    _item(row, "restore", v.retention, f"would restore: {v.why}")
                )
                return None
            item = _restore_row(ctx, s, row, trash, now, actor=ctx.actor, why=v.why, verdict=v)
            report.restored.append(item)
            return None
        if run.dry_run:
            report.purged.append(_item(row, "purge", v.retention, "would be purged"))
            return None
        path = trash / (row.trash_path or loc.rel_path(row).as_posix())
        note = ""
        loc.drop_case_links(ctx.config, row, path)
        try:
            links = os.lstat(path).st_nlink
            os.unlink(path)
        except FileNotFoundError:
            note = f"{path} was already gone from the trash"
        else:
            loc.prune_emptied(trash, path.parent)
            if links > 1:
                note = f"{links - 1} other hard link(s) to it remain outside the trash"
                alert = (
                    "retention.links_remain",
                    row.store_path,
                    f"file {row.id} ({row.store_path}) was purged but {links - 1} other hard "
                    "link(s) still hold its bytes; find them (find / -samefile) and remove them",
                )
        row.state = "purged"
        row.purged_at = now
        audit.record_file_change(
            s,
            row,
            at=now,
            actor=ctx.actor,
            action="file.purge",
            changed=("state", "purged_at"),
            details={
                "hash": {"blake3": row.blake3},
                "path": row.store_path,
                "trash_path": row.trash_path,
                "trashed_at": row.trashed_at.isoformat() if row.trashed_at else None,
                "policy": report.policy,
                "category": v.retention.category,
                "rule": v.retention.rule,
                "grace_days": ctx.config.retention.trash_grace_days,
                "note": note or None,
                "sweep_run": run.id,
            },
        )
        report.purged.append(_item(row, "purge", v.retention, note))
    return alert


# ---------------------------------------------------------------------------- restore


def _restore_row(
    ctx: Context,
    s: Session,
    row: Recording,
    trash: Path,
    now: datetime,
    *,
    actor: str,
    why: str,
    verdict: Verdict,
) -> Item:
    """Move a trashed file back to its place in the store (inside the caller's transaction)."""
    src = trash / (row.trash_path or loc.rel_path(row).as_posix())
    root = loc.root_of(ctx.config, row)
    dst = root / row.store_path
    if dst.exists() or dst.is_symlink():
        raise UsageError(
            f"cannot restore file {row.id}: {dst} is taken in the store; move that file "
            "aside first (it is not in the ledger under this id)"
        )
    if not src.is_file():
        raise NotFound(
            f"file {row.id} should be in the trash at {src} but is not there; it cannot be "
            "restored (check the trash directory)"
        )
    loc.makedirs(root, PurePosixPath(row.store_path).parent)
    os.rename(src, dst)
    try:
        loc.fsync_dir(dst.parent)
        loc.prune_emptied(trash, src.parent)
        from_path = row.trash_path
        row.state = "stored"
        row.trashed_at = None
        row.trash_path = None
        row.expires_at = verdict.retention.expires_at
        audit.record_file_change(
            s,
            row,
            at=now,
            actor=actor,
            action="file.restore",
            changed=("state", "trashed_at", "trash_path"),
            details={
                "hash": {"blake3": row.blake3},
                "path": row.store_path,
                "trash_path": from_path,
                "why": why,
                "held_by": list(verdict.held_by),
                "category": verdict.retention.category,
                "rule": verdict.retention.rule,
            },
        )
        s.flush()
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(dst, src)
        raise
    return _item(row, "restore", verdict.retention, why)


def restore(
    ctx: Context,
    file_id: int,
    *,
    by: str,
    reason: str,
    hold_reason: str | None = None,
    hold_text: str | None = None,
) -> Item:
    """``dockd trash restore``: bring a file back from the trash.

    A file that the policy would trash again at once is only restored with a hold
    (``hold_reason``), placed in the same transaction; otherwise it is refused.
    """
    if not by.strip():
        raise UsageError("say who restores the file (--by NAME)")
    if not reason.strip():
        raise UsageError("say why the file is restored (--reason '...')")
    now = ctx.clock.now()
    trash = loc.trash_root(ctx.config)
    with ctx.ledger.session() as s:
        pledger.serialize_with_holds(s)
        row = s.get(Recording, file_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no file with id {file_id}; `dockd trash list` shows the trash")
        if row.state != "trashed":
            raise UsageError(
                f"file {file_id} is {row.state}, not in the trash"
                + ("; purged files cannot come back" if row.state == "purged" else "")
            )
        if hold_reason is not None:
            pledger.place_hold(
                s,
                station=ctx.config.station.id,
                at=now,
                by=by,
                reason=hold_reason,
                text_=hold_text or reason,
                file_id=file_id,
            )
        v = _verdict(s, ctx, row, now)
        if v.delete:
            raise UsageError(
                f"file {file_id} is still expired under the policy ({v.retention.rule}); "
                "restored it would be trashed again by the next sweep. Give --hold REASON to "
                "keep it under a hold, or change its category or case first"
            )
        return _restore_row(
            ctx, s, row, trash, now, actor=by, why=f"restored by {by}: {reason}", verdict=v
        )


def restore_covered(ctx: Context, hold_id: int, *, by: str) -> list[Item]:
    """Restore every trashed file a (just placed) hold covers."""
    with ctx.ledger.read() as s:
        hold = s.get(Hold, hold_id)
        if hold is None:
            raise NotFound(f"no hold with id {hold_id}")
        ids = [r.id for r in pledger.covered_files(s, hold, states=("trashed",))]
    out = []
    for file_id in ids:
        out.append(restore(ctx, file_id, by=by, reason=f"covered by hold #{hold_id}"))
    return out


# ---------------------------------------------------------------------------- reports


def upcoming(ctx: Context, days: int) -> list[dict[str, Any]]:
    """What the sweep will take within ``days``: files to trash, trash to purge."""
    now = ctx.clock.now()
    horizon = now + timedelta(days=days)
    grace = timedelta(days=ctx.config.retention.trash_grace_days)
    tz = ctx.config.station.tz
    out: list[dict[str, Any]] = []
    with ctx.ledger.read() as s:
        rows = list(
            s.scalars(
                select(Recording)
                .where(
                    Recording.expires_at <= horizon,
                    Recording.state == "stored",
                    Recording.station == _station(ctx),
                )
                .order_by(Recording.expires_at, Recording.id)
            )
        )
        rows += list(
            s.scalars(
                select(Recording)
                .where(
                    Recording.expires_at.is_(None),
                    Recording.state == "stored",
                    Recording.station == _station(ctx),
                )
                .order_by(Recording.id)
            )
        )
        for row in rows:
            facts, _, r = pledger.retention_now(s, row, ctx.config.retention)
            if r.expires_at > horizon:
                continue
            holds = pledger.holds_touching(s, facts)
            out.append(
                {
                    "file_id": row.id,
                    "action": "held" if holds else "trash",
                    "when": max(r.expires_at, now).astimezone(tz).isoformat(),
                    "store_path": row.store_path,
                    "category": r.category,
                    "rule": r.rule,
                    "held_by": ",".join(f"#{h.id}" for h in holds),
                }
            )
        for row in s.scalars(
            select(Recording)
            .where(
                Recording.trashed_at <= horizon - grace,
                Recording.state == "trashed",
                Recording.station == _station(ctx),
            )
            .order_by(Recording.trashed_at, Recording.id)
        ):
            assert row.trashed_at is not None
            out.append(
                {
                    "file_id": row.id,
                    "action": "purge",
                    "when": max(row.trashed_at + grace, now).astimezone(tz).isoformat(),
                    "store_path": row.store_path,
                    "category": "",
                    "rule": f"in the trash since {row.trashed_at.astimezone(tz).isoformat()}",
                    "held_by": "",
                }
            )
    out.sort(key=lambda d: (d["when"], d["file_id"]))
    return out


def trash_list(ctx: Context) -> list[dict[str, Any]]:
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
                .where(Recording.state == "trashed", Recording.station == _station(ctx))
                .order_by(Recording.trashed_at, Recording.id)
            )
        ]
